import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cliPath, runCli, spawnCli, watchCli } from "../helpers/cli.js";
import { writeBigramLlama } from "../helpers/ggufWriter.js";
import { bundledTinyModel, hasShared, repoRoot, sharedModel, sharedTitle } from "../helpers/shared.js";

const chatModel = sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf");
const storiesQ8 = sharedModel("stories260K-Q8_0.gguf");

function expectOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe("lmrun run on the bundled demo model", () => {
  it("streams only the generated text to stdout and nothing to stderr", async () => {
    const json = await runCli(["run", "tiny", "Once upon a time", "--temp", "0", "-n", "24", "--json"]);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { text: string };
    const plain = await runCli(["run", "tiny", "Once upon a time", "--temp", "0", "-n", "24"]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toBe("");
    expect(plain.stdout).toBe(parsed.text);
    expect(plain.stdout.length).toBeGreaterThan(20);
  });

  it("is byte-identical run after run at temperature 0, and with the same seed", async () => {
    const args = ["run", "tiny", "The little dog", "-n", "40"];
    const [a, b] = await Promise.all([runCli([...args, "--temp", "0"]), runCli([...args, "--temp", "0"])]);
    expect(a.stdout).toBe(b.stdout);
    const [c, d] = await Promise.all([runCli([...args, "--seed", "1234", "--temp", "1"]), runCli([...args, "--seed", "1234", "--temp", "1"])]);
    expect(c.stdout).toBe(d.stdout);
    const e = await runCli([...args, "--seed", "999", "--temp", "1"]);
    expect(e.stdout).not.toBe(c.stdout);
  });

  it("reads the prompt from stdin and joins it after the argument", async () => {
    const piped = await runCli(["run", "tiny", "--temp", "0", "-n", "16", "--json"], { input: "Once upon a time\n" });
    const direct = await runCli(["run", "tiny", "Once upon a time", "--temp", "0", "-n", "16", "--json"]);
    expect(JSON.parse(piped.stdout).text).toBe(JSON.parse(direct.stdout).text);
    const both = await runCli(["run", "tiny", "Lily", "--temp", "0", "-n", "8", "--json"], { input: "had a ball" });
    expect(JSON.parse(both.stdout).promptTokens).toBeGreaterThan(JSON.parse(direct.stdout).promptTokens - 3);
  });

  it("--json carries text, model, token counts, stop reason, timings and sampling", async () => {
    const r = await runCli(["run", "tiny", "Once upon a time", "--temp", "0", "-n", "12", "--json", "--seed", "7"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.model.fileName).toBe("stories260K-Q8_0.gguf");
    expect(j.model.path).toBe(bundledTinyModel);
    expect(j.generatedTokens).toBe(12);
    expect(j.promptTokens).toBeGreaterThanOrEqual(4);
    expect(j.stopReason).toBe("maxTokens");
    for (const key of ["loadMs", "ttftMs", "promptTokensPerSecond", "generationTokensPerSecond", "totalMs"]) {
      expect(typeof j.timings[key]).toBe("number");
      expect(j.timings[key]).toBeGreaterThan(0);
    }
    expect(j.sampling).toMatchObject({ temperature: 0, seed: 7, maxTokens: 12, topK: 40 });
  });

  it("--stop ends generation exactly before the stop text, spaces and word pieces included", async () => {
    const args = ["run", "tiny", "Once upon a time", "--temp", "0", "-n", "60"];
    const free = JSON.parse((await runCli([...args, "--json"])).stdout).text as string;
    const words = free.trim().split(/\s+/);
    // Two words with the space between them, and the middle of a word (node-llama-cpp's own matching
    // in plain completion missed the first and cut the space before the second).
    for (const stop of [`${words[3]} ${words[4]}`, words[5]!.slice(1, 3)]) {
      const expected = free.slice(0, free.indexOf(stop));
      const r = JSON.parse((await runCli([...args, "--json", "--stop", stop])).stdout);
      expect(r.stopReason).toBe("stop");
      expect(r.text).toBe(expected);
      const streamed = await runCli([...args, "--stop", stop]);
      expect(streamed.stdout).toBe(expected);
    }
    // A stop text that never comes changes nothing.
    const none = JSON.parse((await runCli([...args, "--json", "--stop", "zzqx"])).stdout);
    expect(none.text).toBe(free);
    expect(none.stopReason).toBe("maxTokens");
  });

  it("JSON cut off by --max-tokens is written but fails (exit 1); --format with --json-schema is a usage error", async () => {
    const cut = await runCli(["run", "tiny", "Once", "--format", "json", "-n", "6", "--seed", "1"]);
    expect(cut.code).toBe(1);
    expect(cut.stdout.startsWith("{")).toBe(true);
    expect(() => JSON.parse(cut.stdout)).toThrow();
    expectOneLineError(cut.stderr, /the output reached --max-tokens 6 before the JSON was complete/);
    const both = await runCli(["run", "tiny", "Once", "--format", "json", "--json-schema", "package.json"]);
    expect(both.code).toBe(2);
    expectOneLineError(both.stderr, /give --format json or --json-schema, not both/);
  });

  it("a system prompt that plain completion cannot use is reported, not dropped silently", async () => {
    const r = await runCli(["run", "tiny", "Once", "--system", "Be brief.", "-n", "4"]);
    expect(r.code).toBe(0);
    expect(r.stderr.trim()).toBe("warning: the system prompt is not used: stories260K-Q8_0.gguf has no chat template, which has no system prompt");
  });

  it("--stats prints an ollama-style summary on stderr, stdout stays clean", async () => {
    const withStats = await runCli(["run", "tiny", "Once", "--temp", "0", "-n", "8", "--stats"]);
    const without = await runCli(["run", "tiny", "Once", "--temp", "0", "-n", "8"]);
    expect(withStats.stdout).toBe(without.stdout);
    // count / duration = rate: the count is the 7 tokens after the first (which the prompt pass gives).
    expect(withStats.stderr).toMatch(/^eval count:\s+7 token\(s\) after the first$/m);
    const duration = Number(/^eval duration:\s+([\d.]+)ms$/m.exec(withStats.stderr)?.[1]);
    const rate = Number(/^eval rate:\s+([\d.]+) tokens\/s$/m.exec(withStats.stderr)?.[1]);
    expect(rate).toBeGreaterThan(0);
    if (Number.isFinite(duration) && duration >= 1) expect(Math.abs(7 / (duration / 1000) - rate) / rate).toBeLessThan(0.1);
  });
});

describe.skipIf(!hasShared)(sharedTitle("lmrun run on shared models"), () => {
  it("tokenises and continues a raw prompt as llama.cpp does (llama-completion's text, leading space included)", async () => {
    // `llama-completion -m stories260K-Q8_0.gguf -p PROMPT -n 32 --temp 0 --no-display-prompt` from the
    // llama.cpp node-llama-cpp ships (de3ff81, `npm run llama-tools`), 2026-12-07. Given the string,
    // LlamaCompletion would drop the SPM word-start space after the BOS ("O", "n", "ce" instead of
    // "▁Once", 38 prompt tokens instead of llama-server's 36) and answer "One day, she saw a big, red ball..."; and its
    // first word would lose its space.
    const prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
    const golden = " One day, Lily's mommy told her that they were going to the park to play. Lily was very exc";
    const plain = await runCli(["run", storiesQ8, prompt, "-n", "32", "--temp", "0", "--local"]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe(golden);
    const json = JSON.parse((await runCli(["run", storiesQ8, prompt, "-n", "32", "--temp", "0", "--local", "--json"])).stdout);
    expect(json.text).toBe(golden);
    expect(json.promptTokens).toBe(36);
  });

  it("applies the chat template and the system prompt", async () => {
    const plain = JSON.parse((await runCli(["run", chatModel, "Hello", "--temp", "0", "-n", "8", "--json"])).stdout);
    const sys = JSON.parse((await runCli(["run", chatModel, "Hello", "--system", "You are a storyteller.", "--temp", "0", "-n", "8", "--json"])).stdout);
    const raw = JSON.parse((await runCli(["run", chatModel, "Hello", "--raw", "--temp", "0", "-n", "8", "--json"])).stdout);
    expect(plain.chatTemplate).toBe(true);
    expect(raw.chatTemplate).toBe(false);
    // "User: Hello\nAssistant:" is longer than "Hello"; the system prompt adds more.
    expect(plain.promptTokens).toBeGreaterThan(raw.promptTokens);
    expect(sys.promptTokens).toBeGreaterThan(plain.promptTokens);
  });

  it("remembers the model's chat wrapper: the next run formats the prompt identically", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-wrapper-"));
    const args = ["run", chatModel, "Hello", "--system", "Be kind.", "--temp", "0", "-n", "12", "--json"];
    const first = JSON.parse((await runCli(args, { home })).stdout);
    const cacheFile = path.join(home, "cache", "chat-wrappers.json");
    expect(Object.values(JSON.parse(fs.readFileSync(cacheFile, "utf8")).entries)).toHaveLength(1);
    const second = JSON.parse((await runCli(args, { home })).stdout);
    expect(second.promptTokens).toBe(first.promptTokens);
    expect(second.text).toBe(first.text);
    // A cache that cannot be read is no obstacle.
    fs.writeFileSync(cacheFile, "\u0000garbage");
    const third = await runCli(args, { home });
    expect(third.code).toBe(0);
    expect(JSON.parse(third.stdout).text).toBe(first.text);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("--system-file reads the system prompt from a file", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-sys-")), "system.txt");
    fs.writeFileSync(file, "You are a storyteller.\n");
    const a = JSON.parse((await runCli(["run", chatModel, "Hello", "--system-file", file, "--temp", "0", "-n", "8", "--json"])).stdout);
    const b = JSON.parse((await runCli(["run", chatModel, "Hello", "--system", "You are a storyteller.", "--temp", "0", "-n", "8", "--json"])).stdout);
    expect(a.text).toBe(b.text);
    expect(a.promptTokens).toBe(b.promptTokens);
  });

  it("--format json constrains the output to JSON, and says when -n cut it short", async () => {
    // The story model opens an object and never closes it: the grammar holds, the limit ends it.
    const r = await runCli(["run", storiesQ8, "Once", "--raw", "--format", "json", "--temp", "0", "-n", "60", "--json"]);
    const j = JSON.parse(r.stdout);
    expect(j.text.trim().startsWith("{")).toBe(true);
    expect(j.stopReason).toBe("maxTokens");
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /the output reached --max-tokens 60 before the JSON was complete/);
  });

  it("--json-schema constrains the output to the schema", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-schema-"));
    const schema = path.join(dir, "schema.json");
    fs.writeFileSync(schema, JSON.stringify({ type: "object", properties: { answer: { enum: ["yes", "no"] } }, required: ["answer"] }));
    const r = await runCli(["run", storiesQ8, "Is it?", "--raw", "--json-schema", schema, "--temp", "0", "-n", "40", "--json"]);
    expect(r.code).toBe(0);
    const value = JSON.parse(JSON.parse(r.stdout).text);
    expect(["yes", "no"]).toContain(value.answer);
  });

  it("refuses a prompt longer than the context with the token counts, and --truncate keeps its end", async () => {
    const long = "Once upon a time there was a cat. ".repeat(80);
    const r = await runCli(["run", storiesQ8, "-n", "4", "--ctx", "128"], { input: long });
    expect(r.code).toBe(2);
    // -c 128 is below llama.cpp's smallest context here (256): the message says which it got and why.
    expectOneLineError(r.stderr, /prompt is \d+ tokens but the context holds 256 \(llama.cpp's smallest here, for -c 128; the model was trained on 512\).*--truncate/);
    const t = await runCli(["run", storiesQ8, "-n", "4", "--ctx", "128", "--truncate", "--json", "--temp", "0"], { input: long });
    expect(t.code).toBe(0);
    const j = JSON.parse(t.stdout);
    expect(j.truncatedPromptTokens).toBeGreaterThan(0);
    expect(j.promptTokens).toBeLessThan(j.load.contextSize);
    expect(j.promptTokens).toBeGreaterThan(j.load.contextSize - 32);
    expect(t.stderr).toMatch(/first \d+ tokens were dropped/);
    // Room is left for the reply (here all of -n 100), and promptTokens is the prompt, not what a context shift re-evaluated.
    const roomy = JSON.parse((await runCli(["run", storiesQ8, "-n", "100", "--ctx", "256", "--truncate", "--json", "--temp", "0"], { input: long })).stdout);
    expect(roomy.load.contextSize).toBe(256);
    expect(roomy.generatedTokens).toBe(100);
    expect(roomy.promptTokens + roomy.generatedTokens).toBeLessThanOrEqual(256);
    expect(roomy.promptTokens).toBeGreaterThan(256 - 100 - 16);
  });

  it("Ctrl-C keeps what was generated on stdout and exits 130", async () => {
    const child = spawnCli(["run", sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf"), "hello", "-n", "100000", "--ctx", "2048", "--temp", "0"]);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (stdout.length > 50) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stdout.length).toBeGreaterThan(50);
    expect(stderr).toBe("");
  });

  it("SIGTERM keeps what was generated on stdout and dies of the signal (143) within seconds", async () => {
    const run = watchCli(["run", sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf"), "hello", "-n", "100000", "--ctx", "2048", "--temp", "0"]);
    try {
      await run.waitFor("stdout", /[\s\S]{50}/);
      const sentAt = Date.now();
      run.child.kill("SIGTERM");
      const { code, signal, endedAt } = await run.exited();
      // Before: exit 130, as for Ctrl-C.
      expect(signal === "SIGTERM" || code === 143).toBe(true);
      expect(endedAt - sentAt).toBeLessThan(30_000);
      expect(run.stdout().length).toBeGreaterThan(50);
      expect(run.stderr()).toBe("");
    } finally {
      run.child.kill("SIGKILL");
    }
  });

  it("a closed stdout (| head) ends quietly", async () => {
    const child = spawnCli(["run", sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf"), "hello", "-n", "100000", "--ctx", "2048"]);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    let received = 0;
    await new Promise<void>((resolve) => {
      child.stdout!.on("data", (d: Buffer) => {
        received += d.length;
        if (received > 10) {
          child.stdout!.destroy();
          resolve();
        }
      });
    });
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

const shimBuilt = fs.existsSync(path.join(repoRoot, "dist", "native", "threadpool.node"));
const shimSkip = process.platform !== "linux" ? "Linux only" : !shimBuilt ? "dist/native/threadpool.node was not built: no C compiler at install" : "";

describe.skipIf(shimSkip !== "")(`the persistent CPU threadpool${shimSkip ? ` [skipped: ${shimSkip}]` : ""}`, () => {
  it("generation with 2 threads runs on a persistent pool and gives the same text as llama.cpp's per-decode threads", async () => {
    const args = ["run", "tiny", "Once upon a time", "--raw", "--temp", "0", "-n", "48", "-t", "2", "--json"];
    const [pooled, plain] = await Promise.all([runCli(args), runCli(args, { env: { LMRUN_THREADPOOL: "0" } })]);
    expect(pooled.code).toBe(0);
    expect(plain.code).toBe(0);
    const a = JSON.parse(pooled.stdout);
    const b = JSON.parse(plain.stdout);
    expect(a.load.threads).toBe(2);
    expect(a.load.threadpool).toBe("persistent");
    expect(b.load.threadpool).toBe("per-decode");
    expect(a.generatedTokens).toBe(48);
    expect(a.text).toBe(b.text);
  });

  it("--verbose says how many decodes used it; `info` reports it", async () => {
    const r = await runCli(["run", "tiny", "Once", "--raw", "--temp", "0", "-n", "8", "-t", "2", "--verbose"]);
    expect(r.code).toBe(0);
    const decodes = Number(/cpu threads: persistent threadpool for (\d+) decodes, \d+ ms inside llama_decode \(.*libllama[^)]*\)/.exec(r.stderr)?.[1]);
    // The prompt, then one decode per generated token after the first.
    expect(decodes).toBeGreaterThanOrEqual(8);
    const info = await runCli(["info", "--json"]);
    expect(JSON.parse(info.stdout).cpuThreads.persistentPool).toBe(true);
    const off = await runCli(["info", "--json"], { env: { LMRUN_THREADPOOL: "0" } });
    expect(JSON.parse(off.stdout).cpuThreads).toEqual({ persistentPool: false, detail: expect.stringMatching(/LMRUN_THREADPOOL=0/) });
  });

  it.skipIf(!hasShared || os.availableParallelism() < 2)(
    "lmrun's own thread count drops to the cores left free while other processes keep them busy; -t is used as given",
    async () => {
      const model = sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf");
      const args = ["run", model, "Once upon a time", "--raw", "--temp", "0", "--json"];
      // One busy loop per core: ggml's spinning barriers made 2-thread generation ~50x slower than 1 thread here.
      const loops = Array.from({ length: os.availableParallelism() }, () => spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" }));
      let busy;
      try {
        busy = await runCli([...args, "-n", "24"]);
      } finally {
        for (const loop of loops) loop.kill("SIGKILL");
      }
      expect(busy.code, busy.stderr).toBe(0);
      const json = JSON.parse(busy.stdout);
      expect(json.load.threads).toBeGreaterThan(1);
      const byThreads = Object.entries(json.load.generationThreads as Record<string, number>);
      // Every generated token but the first (which comes with the prompt) is one single-token decode.
      expect(byThreads.reduce((sum, [, tokens]) => sum + tokens, 0)).toBe(json.generatedTokens - 1);
      const [mostUsed] = byThreads.sort((a, b) => b[1] - a[1])[0]!;
      expect(Number(mostUsed)).toBe(1);
      const given = await runCli([...args, "-n", "4", "-t", "2"]);
      expect(given.code, given.stderr).toBe(0);
      expect(JSON.parse(given.stdout).load).toMatchObject({ threads: 2, batchThreads: 2 });
      expect(JSON.parse(given.stdout).load.generationThreads).toBeUndefined();
    },
    120_000,
  );

  it("-t above the cores: one warning line on stderr (run, bench, perplexity)", async () => {
    const over = String(os.availableParallelism() + 1);
    const expected = new RegExp(`^warning: -t ${over} asks for more threads than this machine's ${os.availableParallelism()} cores: .*use ${os.availableParallelism()} or fewer$`);
    const run = await runCli(["run", "tiny", "Once", "--raw", "-n", "2", "-t", over]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr.trimEnd().split("\n")).toEqual([expect.stringMatching(expected)]);
    const bench = await runCli(["bench", "tiny", "-p", "0", "-n", "2", "-r", "1", "-t", `1,${over}`]);
    expect(bench.code, bench.stderr).toBe(0);
    expect(bench.stderr.trimEnd().split("\n")).toEqual([expect.stringMatching(expected)]);
    const text = path.join(os.tmpdir(), `lmrun-t-warning-${process.pid}.txt`);
    fs.writeFileSync(text, "Once upon a time there was a little girl who liked to play in the park with her dog.\n".repeat(40));
    try {
      const ppl = await runCli(["perplexity", "tiny", "-f", text, "-c", "128", "--chunks", "1", "-t", over]);
      expect(ppl.code, ppl.stderr).toBe(0);
      expect(ppl.stderr).toMatch(new RegExp(expected.source.slice(1, -1)));
      expect(ppl.stderr.match(/warning: -t/g)).toHaveLength(1);
    } finally {
      fs.rmSync(text, { force: true });
    }
  });
});

describe("bad input: one line, non-zero exit, no stack trace", () => {
  it("a missing file", async () => {
    const r = await runCli(["run", "/nonexistent/model.gguf", "hi"]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /model file not found: \/nonexistent\/model.gguf/);
  });

  it("a file that is not GGUF", async () => {
    const r = await runCli(["run", "package.json", "hi"]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /not a GGUF model file/);
  });

  it("a directory", async () => {
    const r = await runCli(["run", os.tmpdir(), "hi"]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /is a directory/);
  });

  it.skipIf(!hasShared)(sharedTitle("GGUF version 1"), async () => {
    const r = await runCli(["run", sharedModel("invalid-gguf-v1.gguf"), "hi"]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /GGUF version 1, which llama.cpp no longer loads/);
  });

  it("a SentencePiece vocabulary without byte tokens (llama.cpp would abort the process)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-nobytes-"));
    const broken = path.join(dir, "no-byte-tokens.gguf");
    writeBigramLlama(broken, ["a", "b", "c"], () => 0, { byteTokens: false });
    for (const args of [["run", broken, "abc", "--raw", "-n", "4"], ["bench", broken, "-p", "8", "-n", "4", "-r", "1"]]) {
      const r = await runCli(args);
      expect(r.signal).toBeNull(); // before the check: SIGABRT, "terminate called after throwing ... std::out_of_range"
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expectOneLineError(r.stderr, /no-byte-tokens.gguf has a SentencePiece vocabulary without its byte tokens \(253 of the 256, e.g. <0x00>, are missing\)/);
    }
    // The same model with its byte tokens runs.
    const good = path.join(dir, "with-byte-tokens.gguf");
    writeBigramLlama(good, ["a", "b", "c"], () => 0);
    const ok = await runCli(["run", good, "abc", "--raw", "-n", "4"]);
    expect(ok.code).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a real model cut inside its header (run, show and bench)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-header-"));
    const full = fs.readFileSync(bundledTinyModel);
    for (const bytes of [30, 1000]) {
      const cut = path.join(dir, `first-${bytes}.gguf`);
      fs.writeFileSync(cut, full.subarray(0, bytes));
      for (const args of [["run", cut, "hi"], ["show", cut], ["bench", cut, "-r", "1", "-p", "8", "-n", "4"]]) {
        const r = await runCli(args);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        // Before: "Cannot read properties of undefined (reading 'architecture')", a made-up vocabulary problem, or (show) exit 0 with nonsense.
        expectOneLineError(r.stderr, new RegExp(`first-${bytes}.gguf is truncated: it holds ${bytes} bytes but its GGUF header alone takes \\d+`));
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(fs.existsSync("/dev/nvidia0") || process.platform !== "linux")("a GPU backend that cannot load here names the backend and the way out (run and info)", async () => {
    for (const args of [["run", "tiny", "hi", "--gpu", "cuda"], ["info", "--gpu", "cuda"]]) {
      const r = await runCli(args, { env: { LMRUN_GPU_CHECK: "0" } });
      expect(r.code).toBe(1);
      // Before: "error: NoBinaryFoundError" from info.
      expectOneLineError(r.stderr, /^error: cannot use CUDA on this machine: none of node-llama-cpp's CUDA builds of llama.cpp loads here .*--gpu cpu/);
    }
  });

  it("a real model truncated to half its size", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-trunc-"));
    const half = path.join(dir, "half.gguf");
    const full = fs.readFileSync(bundledTinyModel);
    fs.writeFileSync(half, full.subarray(0, Math.floor(full.length / 2)));
    const r = await runCli(["run", half, "hi"]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, new RegExp(`truncated: it holds ${Math.floor(full.length / 2)} bytes but its tensors need at least \\d+`));
  });

  it("a model too big for the memory allowed", async () => {
    const r = await runCli(["run", "tiny", "hi", "--max-ram", "1MB"]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /needs about [\d.]+ MB of RAM .* only 1.00 MB is allowed/);
  });

  it("an empty prompt and empty stdin is a usage error", async () => {
    const r = await runCli(["run", "tiny"], { input: "" });
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, /no prompt/);
  });

  it.each([
    [["--temp", "-1"], /--temp.*must be between 0 and 100, got -1/],
    [["-n", "abc"], /max-tokens.*expected a whole number, got "abc"/],
    [["--top-p", "2"], /--top-p.*must be between 0 and 1/],
    [["--gpu", "tpu"], /expected one of auto, cuda, vulkan, metal, cpu/],
    [["--bogus"], /unknown option '--bogus'/],
  ])("flag %j is a usage error", async (flags, pattern) => {
    const r = await runCli(["run", "tiny", "hi", ...flags]);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, pattern);
  });

  it("--verbose adds the stack trace", async () => {
    const r = await runCli(["run", "/nonexistent/model.gguf", "hi", "--verbose"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});

describe("global behaviour", () => {
  it.skipIf(!fs.existsSync("/dev/full"))("a stdout that cannot be written (> /dev/full) is one line on stderr and exit 1", async () => {
    for (const args of [["run", "tiny", "Once", "-n", "5"], ["--help"], ["ls"]]) {
      const full = fs.openSync("/dev/full", "w");
      const child = spawn(process.execPath, [cliPath, ...args], {
        env: { ...process.env, LMRUN_HOME: fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-full-")), CI: "true" },
        stdio: ["ignore", full, "pipe"],
      });
      let stderr = "";
      child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
      fs.closeSync(full);
      expect(code).toBe(1);
      expectOneLineError(stderr, /^error: cannot write the output: ENOSPC/);
    }
  });

  it("--version and --help do not load llama.cpp, ink or conf", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: lmrun/);
    for (const name of ["run", "chat", "pull", "bench", "perplexity"]) expect(help.stdout).toContain(name);
  });

  it.each([["--help"], ["--version"], ["run", "--help"]])("%s imports neither node-llama-cpp, ink nor conf", async (...args) => {
    const trace = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-trace-")), "imports.txt");
    const { execFileSync } = await import("node:child_process");
    execFileSync(process.execPath, ["--import", path.join(repoRoot, "test/helpers/trace-imports.mjs"), cliPath, ...args], {
      env: { ...process.env, LMRUN_TRACE_IMPORTS: trace },
      stdio: ["ignore", "ignore", "ignore"],
    });
    const imported = fs.readFileSync(trace, "utf8").split("\n");
    // --version answers before commander is even loaded; help needs it.
    if (args[0] !== "--version") expect(imported).toContain("commander");
    for (const heavy of ["node-llama-cpp", "ink", "react", "conf", "ora"]) expect(imported).not.toContain(heavy);
  });

  it("unknown commands are usage errors", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it("help shown for a missing command goes to stderr with exit 2; asked for, it goes to stdout with exit 0", async () => {
    for (const args of [[], ["config"]]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^Usage: lmrun/);
    }
    const asked = await runCli(["config", "--help"]);
    expect(asked.code).toBe(0);
    expect(asked.stdout).toMatch(/^Usage: lmrun config/);
    expect(asked.stderr).toBe("");
  });
});
