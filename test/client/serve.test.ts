import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RemoteChatEngine } from "../../src/client/chat.js";
import { ServerClient } from "../../src/client/http.js";
import { LlamaChatEngine } from "../../src/engine/chatSession.js";
import type { ChatSampling } from "../../src/engine/chatTypes.js";
import { loadModel } from "../../src/engine/model.js";
import { writeServerRecord } from "../../src/config/serverRecord.js";
import { cliPath, runCli as runCliWithin, spawnCli, tempHome, type CliOptions } from "../helpers/cli.js";
import { hasShared, repoRoot, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { startServe, type ServeProcess } from "../server/helpers.js";

/**
 * The CLI as a client of a real `lmrun serve` child process (serve-core's server, real inference on
 * real models, loopback only): run/chat/ps/stop/batch through it against the same commands in-process.
 */

const chatModelPath = sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf");
const KEY = "test-key-0123456789";
const greedy = ["--temp", "0"];
/** Safety limits only (nothing here asserts on time): a machine shared with builds can be very slow. */
const TEST_MS = 300_000;
const runCli = (args: string[], options: CliOptions = {}) => runCliWithin(args, { timeoutMs: 240_000, ...options });

/** The address record is what the clients find the server by: wait for it as well as for "listening". */
async function startServer(args: string[]): Promise<ServeProcess> {
  const server = await startServe(args);
  const deadline = Date.now() + 30_000;
  while (!fs.existsSync(path.join(server.home, "server.json"))) {
    if (Date.now() > deadline) throw new Error(`lmrun serve wrote no address record:\n${server.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return server;
}

function expectOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
}

/** Every module the command imported (test/helpers/trace-imports.mjs). */
function tracedImports(args: string[], env: Record<string, string>): { imported: string[]; stdout: string } {
  const trace = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-trace-")), "imports.txt");
  const stdout = execFileSync(process.execPath, ["--import", path.join(repoRoot, "test/helpers/trace-imports.mjs"), cliPath, ...args], {
    env: { ...process.env, NO_COLOR: "1", CI: "true", ...env, LMRUN_TRACE_IMPORTS: trace },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { imported: fs.readFileSync(trace, "utf8").split("\n"), stdout };
}

describe.skipIf(!hasShared)(`the CLI through a running lmrun serve (${hasShared ? "tiny + stories260K with a chat template" : sharedSkipReason})`, () => {
  let server: ServeProcess;
  let env: Record<string, string>;
  beforeAll(async () => {
    server = await startServer(["tiny", chatModelPath, "--parallel", "2", "--ctx", "512", "-t", "1", "--max-queue", "0", "--api-key", KEY]);
    // The clients find the server through its record in LMRUN_HOME, and send the key.
    env = { LMRUN_HOME: server.home, LMRUN_API_KEY: KEY };
  }, TEST_MS);
  afterAll(async () => {
    await server?.stop();
  }, TEST_MS);

  const requests = () => (server.log().match(/POST \/api\/generate/g) ?? []).length;

  it("run through the server prints the bytes run --local prints at temp 0, and the same --json fields", async () => {
    for (const args of [
      ["run", "tiny", "Once upon a time", "-n", "24", ...greedy],
      ["run", "tiny", "The little dog", "-n", "40", "--stop", "Lily", ...greedy],
      ["run", chatModelPath, "Tell me a story", "-s", "You tell stories.", "-n", "24", ...greedy],
      ["run", chatModelPath, "Once upon a time", "--raw", "-n", "16", "--seed", "42", "--temp", "0.9"],
    ]) {
      const before = requests();
      const served = await runCli(args, { env });
      const local = await runCli([...args, "--local"], { env });
      expect(served.code).toBe(0);
      expect(local.code).toBe(0);
      expect(served.stdout.length).toBeGreaterThan(0);
      expect(served.stdout).toBe(local.stdout);
      expect(served.stderr).toBe(local.stderr);
      expect(requests()).toBe(before + 1); // --local did not go to the server; the first call did
    }
    // The server's name for a file it was started with (as `lmrun ps` shows it) is no file here, yet goes there.
    const byName = await runCli(["run", path.basename(chatModelPath), "Tell me a story", "-s", "You tell stories.", "-n", "24", ...greedy], { env });
    const byPath = await runCli(["run", chatModelPath, "Tell me a story", "-s", "You tell stories.", "-n", "24", ...greedy], { env });
    expect(byName.code).toBe(0);
    expect(byName.stdout).toBe(byPath.stdout);
    const args = ["run", chatModelPath, "Once upon a time", "-n", "12", "--json", "--seed", "7", ...greedy];
    const served = JSON.parse((await runCli(args, { env })).stdout);
    const local = JSON.parse((await runCli([...args, "--local"], { env })).stdout);
    expect(Object.keys(served)).toEqual(Object.keys(local));
    for (const key of ["text", "model", "promptTokens", "generatedTokens", "stopReason", "truncatedPromptTokens", "chatTemplate", "sampling"]) {
      expect(served[key], key).toEqual(local[key]);
    }
    expect(Object.keys(served.timings)).toEqual(Object.keys(local.timings));
    // generationThreads is there only when lmrun chose the thread count itself (the server runs -t 1).
    const loadKeys = (load: object) => Object.keys(load).filter((k) => k !== "generationThreads");
    expect(loadKeys(served.load)).toEqual(loadKeys(local.load));
    expect(served.timings.loadMs).toBe(0); // warm
    expect(served.load.threads).toBe(1); // the server's settings, not this process's
  }, TEST_MS);

  it("--stats prints the same rows; the client path imports neither node-llama-cpp nor Ink", async () => {
    const served = await runCli(["run", "tiny", "Once upon a time", "-n", "8", "--stats", ...greedy], { env });
    const local = await runCli(["run", "tiny", "Once upon a time", "-n", "8", "--stats", "--local", ...greedy], { env });
    const rows = (s: string) => s.split("\n").map((l) => l.split(":")[0]);
    expect(rows(served.stderr)).toEqual(rows(local.stderr));
    expect(served.stderr).toMatch(/eval count:\s+7 token\(s\) after the first/);
    for (const args of [["run", "tiny", "Once upon a time", "-n", "8", ...greedy], ["ps"]]) {
      const { imported, stdout } = tracedImports(args, env);
      expect(stdout.length).toBeGreaterThan(0);
      for (const heavy of ["node-llama-cpp", "ink", "react"]) expect(imported, `${args[0]} imported ${heavy}`).not.toContain(heavy);
    }
  }, TEST_MS);

  it("a record whose process is dead, or a live record where nothing answers, runs in-process", async () => {
    const home = tempHome();
    const args = ["run", "tiny", "Once upon a time", "-n", "12", ...greedy];
    const expected = (await runCli([...args, "--local"], { env })).stdout;
    // The test runner's own pid is alive, but nothing listens on port 1.
    await writeServerRecord({ pid: process.pid, url: "http://127.0.0.1:1", host: "127.0.0.1", port: 1, startedAt: "", version: "0" }, { LMRUN_HOME: home });
    const r = await runCli(args, { home });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(expected);
    // Named with --server, a server that does not answer is an error, not a silent fallback.
    const named = await runCli([...args, "--server", "127.0.0.1:1"], { home });
    expect(named.code).toBe(1);
    expectOneLineError(named.stderr, /no server answers at http:\/\/127\.0\.0\.1:1.*--local/);
  }, TEST_MS);

  it("errors: no key, a prompt longer than the context, load flags with --server", async () => {
    const noKey = await runCli(["run", "tiny", "Hi", "-n", "4", "--server", server.url], { env: { LMRUN_HOME: tempHome() } });
    expect(noKey.code).toBe(1);
    expectOneLineError(noKey.stderr, /wants an API key\. Set LMRUN_API_KEY/);
    const wrong = await runCli(["run", "tiny", "Hi", "-n", "4"], { env: { ...env, LMRUN_API_KEY: "nope" } });
    expectOneLineError(wrong.stderr, /refused the API key in LMRUN_API_KEY/);
    const long = "once upon a time ".repeat(300);
    const tooLong = await runCli(["run", "tiny", long, "-n", "4"], { env });
    expect(tooLong.code).toBe(2);
    expectOneLineError(tooLong.stderr, /the prompt is \d+ tokens but each slot's context holds 512/);
    const flags = await runCli(["run", "tiny", "Hi", "-c", "256", "--server", server.url], { env });
    expect(flags.code).toBe(2);
    expectOneLineError(flags.stderr, /--ctx cannot change how a running server loads its models/);
  }, TEST_MS);

  it("chat's remote engine gives the in-process engine's replies, turn after turn", async () => {
    const sampling: ChatSampling = { temperature: 0, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, maxTokens: 20 };
    const client = new ServerClient(server.url, { apiKey: KEY });
    const tags = (await client.json<{ models: Array<{ name: string; lmrun?: { path?: string } }> }>("GET", "/api/tags")).models;
    const name = tags.find((m) => m.lmrun?.path === fs.realpathSync(chatModelPath))?.name ?? path.basename(chatModelPath, ".gguf");
    const remote = await RemoteChatEngine.create(client, name, { systemPrompt: "Tell stories." });
    const loaded = await loadModel(chatModelPath, { gpu: "cpu", gpuLayers: 0, contextSize: 512, threads: 1, verbose: false });
    const local = await LlamaChatEngine.create(loaded, { modelName: "stories", systemPrompt: "Tell stories." });
    try {
      expect(remote.contextSize).toBe(512);
      for (const turn of ["Once upon a time", "And then?"]) {
        let streamed = "";
        const a = await remote.send(turn, { sampling, onText: (t) => (streamed += t) });
        const b = await local.send(turn, { sampling });
        expect(a.text.length).toBeGreaterThan(0);
        expect(a.text).toBe(b.text);
        expect(streamed).toBe(a.text);
        expect(a.stats.generatedTokens).toBe(b.stats.generatedTokens);
        expect(a.stats.stopReason).toBe(b.stats.stopReason);
      }
      expect(remote.getHistory()).toEqual(local.getHistory());
      expect(remote.contextUsage().used).toBeGreaterThan(0);
    } finally {
      await remote.dispose();
      await local.dispose();
    }
  }, TEST_MS);

  it("ps lists the loaded models; stop unloads one; a stopped model loads again on the next request", async () => {
    await runCli(["run", "tiny", "Hi", "-n", "2"], { env });
    const ps = JSON.parse((await runCli(["ps", "--json"], { env })).stdout);
    expect(ps.server).toBe(server.url);
    const tiny = ps.models.find((m: { name: string }) => m.name === "tiny");
    expect(tiny).toMatchObject({ name: "tiny", parallel: 2, contextLength: 512 });
    expect(tiny.sizeBytes).toBeGreaterThan(0);
    const table = await runCli(["ps"], { env });
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+SIZE\s+PROCESSOR\s+CONTEXT\s+SLOTS\s+UNTIL$/);
    expect(table.stdout).toMatch(/^tiny\s/m);

    const stop = await runCli(["stop", "tiny", "--json"], { env });
    expect(stop.code).toBe(0);
    expect(JSON.parse(stop.stdout)).toEqual({ server: server.url, model: "tiny", unloaded: true });
    const after = JSON.parse((await runCli(["ps", "--json"], { env })).stdout);
    expect(after.models.map((m: { name: string }) => m.name)).not.toContain("tiny");
    const again = await runCli(["stop", "tiny"], { env });
    expect(again.code).toBe(1);
    expectOneLineError(again.stderr, /tiny is not loaded on the server/);
    const reloaded = JSON.parse((await runCli(["run", "tiny", "Hi", "-n", "2", "--json"], { env })).stdout);
    expect(reloaded.timings.loadMs).toBeGreaterThan(0);
    const none = await runCli(["ps"], { home: tempHome() });
    expect(none.code).toBe(2);
    expectOneLineError(none.stderr, /no lmrun server is running/);
  }, TEST_MS);

  it("batch: through the server and in-process give run's texts, by id; bad lines are named and nothing runs", async () => {
    const prompts = ["Once upon a time", "The little dog", "Lily had a ball", "Tom went to the park", "The sun was hot"];
    const file = path.join(tempHome(), "in.jsonl");
    // One line asks for its tokens' log-probabilities: the same values in-process and through the server.
    fs.writeFileSync(file, prompts.map((p, i) => JSON.stringify({ id: `p${i}`, prompt: p, max_tokens: 10 + i, ...(i === 1 ? { logprobs: true, top_logprobs: 2 } : {}) })).join("\n") + "\n");
    const served = await runCli(["batch", "tiny", file, ...greedy], { env });
    const local = await runCli(["batch", "tiny", file, "--local", "--parallel", "3", ...greedy], { env });
    for (const r of [served, local]) {
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/batch \(.*\): 5 answered in/);
    }
    const byId = (out: string) => new Map(out.trimEnd().split("\n").map((l) => JSON.parse(l)).map((a) => [a.id, a]));
    const a = byId(served.stdout);
    const b = byId(local.stdout);
    expect([...a.keys()].sort()).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    for (const [id, answer] of a) {
      expect(answer.text).toBe(b.get(id).text);
      expect(answer.generatedTokens).toBe(b.get(id).generatedTokens);
      expect(answer.logprobs === undefined).toBe(id !== "p1");
    }
    const tokens = a.get("p1").logprobs as Array<{ token: string; logprob: number; top_logprobs: unknown[] }>;
    expect(tokens.map((t) => t.token).join("")).toBe(a.get("p1").text);
    expect(tokens.every((t) => t.top_logprobs.length === 2 && t.logprob <= 0)).toBe(true);
    // Decoded beside other requests or not, the values agree to float rounding.
    b.get("p1").logprobs.forEach((t: { token: string; logprob: number }, i: number) => {
      expect(t.token).toBe(tokens[i]!.token);
      expect(Math.abs(t.logprob - tokens[i]!.logprob)).toBeLessThan(1e-4);
    });
    const one = await runCli(["run", "tiny", prompts[3]!, "-n", "13", ...greedy], { env });
    expect(a.get("p3").text).toBe(one.stdout);
    expect(a.get("p3").generatedTokens).toBe(13);

    fs.writeFileSync(file, '{"id": 1, "prompt": "ok"}\n{"id": 2, "temperature": 0}\n{oops\n');
    const out = path.join(tempHome(), "out.jsonl");
    const bad = await runCli(["batch", "tiny", file, "-o", out], { env });
    expect(bad.code).toBe(2);
    expectOneLineError(bad.stderr, /line 2: no "prompt" or "messages" \(and 1 more bad line: 3\)/);
    expect(fs.existsSync(out)).toBe(false);
  }, TEST_MS);

  it("batch -o --resume after a kill: every id answered exactly once, with the uninterrupted texts", async () => {
    const dir = tempHome();
    const file = path.join(dir, "in.jsonl");
    const ids = Array.from({ length: 8 }, (_, i) => i + 1);
    fs.writeFileSync(file, ids.map((id) => JSON.stringify({ id, prompt: `Story number ${id}:`, max_tokens: 32 })).join("\n") + "\n");
    const out = path.join(dir, "out.jsonl");
    const child = spawnCli(["batch", "tiny", file, "-o", out, "--parallel", "1", ...greedy], { env });
    // Kill it hard once a few answers are on disk.
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const lines = fs.existsSync(out) ? fs.readFileSync(out, "utf8").split("\n").filter(Boolean).length : 0;
        if (lines >= 2) {
          clearInterval(timer);
          child.kill("SIGKILL");
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error("the batch ended before it could be killed"));
        }
      }, 20);
    });
    await new Promise((r) => child.once("close", r));
    const before = fs.readFileSync(out, "utf8").split("\n").filter(Boolean).length;
    expect(before).toBeLessThan(ids.length);
    const again = await runCli(["batch", "tiny", file, "-o", out, ...greedy], { env });
    expect(again.code).toBe(2);
    expectOneLineError(again.stderr, /already holds answers\. Pass --resume/);
    const resumed = await runCli(["batch", "tiny", file, "-o", out, "--resume", ...greedy], { env });
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`${ids.length - before} answered, ${before} skipped`));
    const answers = fs.readFileSync(out, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(answers.map((a) => a.id).sort((x, y) => x - y)).toEqual(ids);
    const whole = await runCli(["batch", "tiny", file, ...greedy], { env });
    const expected = new Map(whole.stdout.trimEnd().split("\n").map((l) => JSON.parse(l)).map((a) => [a.id, a.text]));
    for (const a of answers) expect(a.text).toBe(expected.get(a.id));
  }, TEST_MS);

  it("busy: with every slot taken and no queue, a run says so (503); Ctrl-C on a served run exits 130 and frees its slot", async () => {
    // Two endless generations (ollama's num_predict -1) hold both slots until they are aborted.
    const client = new ServerClient(server.url, { apiKey: KEY });
    const holder = new AbortController();
    const started: Array<Promise<void>> = [];
    const held = [0, 1].map(() => {
      let first!: () => void;
      started.push(new Promise<void>((r) => (first = r)));
      return client
        .stream("/api/generate", { model: "tiny", prompt: "Once upon a time", options: { num_predict: -1, temperature: 0 } }, (chunk) => chunk.response && first(), holder.signal)
        .catch(() => {});
    });
    await Promise.all(started);
    try {
      const busy = await runCli(["run", "tiny", "Hi", "-n", "4"], { env });
      expect(busy.code).toBe(1);
      expectOneLineError(busy.stderr, /is busy: .*Retry in \d+ s, or run in-process with --local/);
    } finally {
      holder.abort();
      await Promise.all(held);
      client.close();
    }
    const child = spawnCli(["run", "tiny", "Once upon a time", "-n", "500", ...greedy], { env });
    await new Promise((r) => child.stdout!.once("data", r));
    child.kill("SIGINT");
    expect(await new Promise((r) => child.once("close", (code) => r(code)))).toBe(130);
    const next = await runCli(["run", "tiny", "Hi", "-n", "4", ...greedy], { env });
    expect(next.code).toBe(0);
    const ps = JSON.parse((await runCli(["ps", "--json"], { env })).stdout);
    expect(ps.models.find((m: { name: string }) => m.name === "tiny").busySlots).toBe(0);
  }, TEST_MS);

  it("a server that dies mid-reply: what was printed stays, then one line and exit 1", async () => {
    const child = spawnCli(["run", "tiny", "Once upon a time", "-n", "500", ...greedy], { env });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await new Promise((r) => child.stdout!.once("data", r));
    server.child.kill("SIGKILL");
    const code = await new Promise((r) => child.once("close", r));
    expect(code).toBe(1);
    expect(stdout.length).toBeGreaterThan(0);
    expectOneLineError(stderr, /closed the connection mid-reply/);
  }, TEST_MS);
});
