import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, runCli, watchCli } from "../helpers/cli.js";
import { writeBigramLlama } from "../helpers/ggufWriter.js";
import { hasShared, repoRoot, sharedCorpus, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const letters = ["a", "b", "c", "d", "e"];
let dir: string;
let oracle: string;
let oracleOther: string;
let longText: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-ppl-"));
  oracle = path.join(dir, "bigram.gguf");
  oracleOther = path.join(dir, "bigram-other.gguf");
  writeBigramLlama(oracle, letters, (t, j) => Math.cos(t + 2 * j) / 8);
  writeBigramLlama(oracleOther, letters, (t, j) => Math.cos(t + 2 * j + 0.3) / 8);
  longText = path.join(dir, "long.txt");
  fs.writeFileSync(longText, Array.from({ length: 400 }, (_, i) => letters.slice(0, 1 + (i % 5)).join("")).join(" ") + "\n");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("perplexity --help", () => {
  it("documents the llama-perplexity meanings of -c, -t and -b and imports nothing heavy", async () => {
    const help = await runCli(["perplexity", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/-c, --ctx <tokens> +tokens per chunk \(default 512/);
    expect(help.stdout).toMatch(/--kl-divergence-base <file>/);
    const trace = path.join(dir, "imports.txt");
    const { execFileSync } = await import("node:child_process");
    execFileSync(process.execPath, ["--import", path.join(repoRoot, "test/helpers/trace-imports.mjs"), cliPath, "perplexity", "--help"], {
      env: { ...process.env, LMRUN_TRACE_IMPORTS: trace },
      stdio: ["ignore", "ignore", "ignore"],
    });
    const imported = fs.readFileSync(trace, "utf8").split("\n");
    for (const heavy of ["node-llama-cpp", "ink", "react", "conf", "ora"]) expect(imported).not.toContain(heavy);
  });
});

describe("perplexity: bad input gets one clear line and a non-zero exit", () => {
  it("a missing text file", async () => {
    const r = await runCli(["perplexity", oracle, "-f", path.join(dir, "nope.txt")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error: text file not found: ${path.join(dir, "nope.txt")}. Check the path given to -f\n`);
  });

  it("an empty file", async () => {
    const empty = path.join(dir, "empty.txt");
    fs.writeFileSync(empty, "");
    const r = await runCli(["perplexity", oracle, "-f", empty]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: .*empty\.txt is empty\. /);
  });

  it("invalid UTF-8", async () => {
    const bad = path.join(dir, "bad.txt");
    fs.writeFileSync(bad, Buffer.from([0x61, 0x20, 0xc3, 0x28, 0x62]));
    const r = await runCli(["perplexity", oracle, "-f", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: .*bad\.txt is not valid UTF-8 \(first bad byte at offset 2\)/);
  });

  it("a text shorter than 2 x ctx tokens, with the counts", async () => {
    const r = await runCli(["perplexity", oracle, "-c", "64"], { input: "ab cd\n" });
    expect(r.code).toBe(2);
    // BOS + "▁ab▁cd" = 7 tokens
    expect(r.stderr).toContain("error: the text is too short: it tokenises to 7 tokens, and a context of 64 needs at least 128");
    expect(r.stdout).toBe("");
  });

  it("no text at all", async () => {
    const r = await runCli(["perplexity", oracle]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: the text on stdin is empty/);
  });

  it("--kl-divergence without a base file, and several models without --base", async () => {
    expect((await runCli(["perplexity", oracle, "--kl-divergence"])).stderr).toMatch(/--kl-divergence needs --kl-divergence-base FILE/);
    expect((await runCli(["perplexity", oracle, oracleOther, "-f", longText])).code).toBe(2);
  });

  it("a truncated or foreign KLD base file, before any compute", async () => {
    const base = path.join(dir, "base.kld");
    const w = await runCli(["perplexity", oracle, "-f", longText, "-c", "64", "-t", "1", "--kl-divergence-base", base]);
    expect(w.code).toBe(0);
    const cut = path.join(dir, "cut.kld");
    fs.writeFileSync(cut, fs.readFileSync(base).subarray(0, fs.statSync(base).size - 10));
    const r = await runCli(["perplexity", oracle, "--kl-divergence-base", cut, "--kl-divergence"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: cut\.kld is truncated: \d+ bytes, expected \d+ for \d+ chunks of 64 tokens/);
    const foreign = await runCli(["perplexity", oracle, "--kl-divergence-base", longText, "--kl-divergence"]);
    expect(foreign.stderr).toMatch(/long\.txt is not a KL-divergence base file/);
  });
});

describe("perplexity: KL divergence against the closed form", () => {
  it("model vs base: mean KLD equals Σ p·ln(p/q) over the scored positions", async () => {
    const base = path.join(dir, "oracle-base.kld");
    expect((await runCli(["perplexity", oracle, "-f", longText, "-c", "64", "-t", "1", "--kl-divergence-base", base])).code).toBe(0);
    const r = await runCli(["perplexity", oracleOther, "--kl-divergence-base", base, "--kl-divergence", "-t", "1", "--json"]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    // Every position's distribution depends only on the current token: rebuild them from the tables.
    const header = fs.readFileSync(base);
    const ctx = header.readInt32LE(8);
    const chunks = header.readInt32LE(16);
    const tokens = Array.from({ length: ctx * chunks }, (_, i) => header.readInt32LE(20 + 4 * i));
    const nVocab = header.readInt32LE(12);
    const scale = 1 / Math.sqrt(1 / (Math.ceil(nVocab / 16) * 16) + 1e-5);
    const dist = (shift: number, t: number) => {
      const l = Array.from({ length: nVocab }, (_, j) => (scale * Math.cos(t + 2 * j + shift)) / 8);
      const m = Math.max(...l);
      const z = l.reduce((s, x) => s + Math.exp(x - m), 0);
      return l.map((x) => Math.exp(x - m) / z);
    };
    let sum = 0;
    let n = 0;
    for (let c = 0; c < chunks; c++) {
      for (let i = ctx / 2; i < ctx - 1; i++) {
        const t = tokens[c * ctx + i]!;
        const p = dist(0, t);
        const q = dist(0.3, t);
        sum += p.reduce((s, pi, j) => s + pi * Math.log(pi / q[j]!), 0);
        n++;
      }
    }
    expect(json.klDivergence.tokens).toBe(n);
    expect(Math.abs(json.klDivergence.kld.value / (sum / n) - 1)).toBeLessThan(2e-3);
    expect(json.klDivergence.sameTop.value).toBeLessThan(1);
  });
});

describe.skipIf(!hasShared)(`perplexity on the stories260K models (${sharedSkipReason})`, () => {
  const wiki = sharedCorpus("wiki.test.raw");

  // A 100,000-token chunk takes minutes on any machine (its attention grows with the square of the
  // context), so "leaves at once" is seconds against minutes. Each step waits for what the CLI has
  // printed, never for a fixed time, so a slow machine only makes the test longer.
  const hugeChunk = () => ["perplexity", sharedModel("stories260K-Q8_0.gguf"), "-f", wiki, "-c", "100000", "--chunks", "1", "-t", "1", "--verbose"];
  const scoringStarted = /trained on only \d+ context tokens \(100000 given\)/;

  it("a second Ctrl-C leaves at once while the first waits for the chunk being scored", async () => {
    const run = watchCli(hugeChunk());
    try {
      await run.waitFor("stderr", scoringStarted);
      run.child.kill("SIGINT");
      // The first Ctrl-C was taken (not mistaken for an echo) and waits for the chunk.
      await run.waitFor("stderr", /stopping: llama\.cpp is finishing the step it is in/);
      const secondAt = Date.now();
      run.child.kill("SIGINT");
      const { code, signal, endedAt } = await run.exited();
      // Killed by SIGINT: the shell's $? is 130.
      expect(signal === "SIGINT" || code === 130).toBe(true);
      expect(endedAt - secondAt).toBeLessThan(30_000);
      expect(run.stdout()).toBe("");
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 180_000);

  it("SIGTERM does not wait for the chunk being scored: exit 143 within seconds", async () => {
    const run = watchCli(hugeChunk());
    try {
      await run.waitFor("stderr", scoringStarted);
      const sentAt = Date.now();
      run.child.kill("SIGTERM");
      const { code, signal, endedAt } = await run.exited();
      // Dies of SIGTERM: the shell's $? is 143. Before: minutes, until the chunk was done.
      expect(signal === "SIGTERM" || code === 143).toBe(true);
      expect(endedAt - sentAt).toBeLessThan(30_000);
      // No chunk was finished: nothing to report.
      expect(run.stdout()).toBe("");
      expect(run.stderr()).not.toMatch(/\n\s+at /);
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 180_000);

  it("SIGTERM after some chunks prints their figure, marked partial, and exits 143", async () => {
    // --verbose shows the per-chunk progress in a pipe: SIGTERM goes once chunk 1 is reported.
    const run = watchCli(["perplexity", sharedModel("stories260K-Q8_0.gguf"), "-f", wiki, "-c", "128", "-b", "128", "-t", "1", "--verbose"]);
    try {
      await run.waitFor("stderr", /\[1\]\d+\.\d+,/);
      run.child.kill("SIGTERM");
      const { code, signal } = await run.exited();
      expect(signal === "SIGTERM" || code === 143).toBe(true);
      expect(run.stdout()).toMatch(/^partial \(interrupted\): the figures below cover only the chunks done\nFinal estimate: PPL = \d+\.\d+ \+\/- \d+\.\d+\n$/);
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 120_000);

  it("equals llama-perplexity's figure to 0.1% (Q8_0, -c 512 --chunks 10)", async () => {
    // llama-perplexity (node-llama-cpp 3.22.1's llama.cpp, de3ff81) -c 512 --chunks 10 -t 1: PPL = 146.7233 +/- 11.00528,
    // and lmrun the same to 4 significant digits, on an AVX2 machine. On an AVX-512/AMX one node-llama-cpp's CPU variant
    // puts some weights in AMX buffers: lmrun 146.6259 +/- 10.99874, llama-perplexity built there (no AMX) 146.6731.
    const r = await runCli(["perplexity", sharedModel("stories260K-Q8_0.gguf"), "-f", wiki, "--chunks", "10", "-t", "1", "--json"]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(Math.abs(json.ppl / 146.7233 - 1)).toBeLessThan(1e-3);
    expect(Math.abs(json.pplError / 11.00528 - 1)).toBeLessThan(1e-3);
    expect(Object.keys(json).sort()).toEqual(
      ["batchSize", "chunks", "chunksPlanned", "ctx", "loadSeconds", "model", "partial", "ppl", "pplError", "seconds", "textTokens", "threads", "tokensScored", "top1Accuracy"].sort(),
    );
    expect(json).toMatchObject({ chunks: 10, chunksPlanned: 10, ctx: 512, tokensScored: 2550, textTokens: 809246, threads: 1, partial: false });
    expect(json.top1Accuracy).toBeGreaterThan(0.05);
    expect(json.top1Accuracy).toBeLessThan(0.5);
  });

  it("--base: PPL(Q4_0) > PPL(Q8_0) ≈ PPL(f32), with KLD and top-1 agreement, in one table", async () => {
    const args = ["perplexity", sharedModel("stories260K-Q8_0.gguf"), sharedModel("stories260K-Q4_0.gguf"), "--base", sharedModel("stories260K-f32.gguf"), "-f", wiki, "--chunks", "4", "-t", "1"];
    const r = await runCli([...args, "--json"]);
    expect(r.code).toBe(0);
    const { base, models } = JSON.parse(r.stdout);
    const [q8, q4] = models;
    expect(base.model.fileName).toBe("stories260K-f32.gguf");
    expect(Math.abs(q8.ppl / base.ppl - 1)).toBeLessThan(0.005);
    expect(q4.ppl).toBeGreaterThan(q8.ppl * 1.02);
    expect(q4.comparison.pplRatio.value).toBeGreaterThan(q8.comparison.pplRatio.value);
    expect(q4.klDivergence.kld.value).toBeGreaterThan(10 * q8.klDivergence.kld.value);
    expect(q8.klDivergence.sameTop.value).toBeGreaterThan(q4.klDivergence.sameTop.value);
    const table = await runCli(args);
    expect(table.stdout.split("\n")[0]).toMatch(/^model +PPL +PPL\/PPL\(base\) +mean KLD +same top +top-1 acc$/);
    expect(table.stdout).toMatch(/\nstories260K-Q4_0\.gguf +\d+\.\d{4} ± \d+\.\d{4} +1\.\d{4} ± /);
  });

  it("a vocabulary mismatch is an error before any compute", async () => {
    const started = Date.now();
    const r = await runCli(["perplexity", sharedModel("llama-2-tiny-random.gguf"), "--base", sharedModel("stories260K-Q8_0.gguf"), "-f", wiki]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: vocabulary mismatch: llama-2-tiny-random.gguf (32000 tokens) and the base stories260K-Q8_0.gguf (512 tokens) do not share a tokenizer. Compare quantisations of the same model only\n",
    );
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("reads the text from stdin, and writes then reads a KLD base file", async () => {
    const text = fs.readFileSync(wiki, "utf8").slice(0, 20_000);
    const viaStdin = await runCli(["perplexity", sharedModel("stories260K-Q8_0.gguf"), "--chunks", "2", "-t", "1"], { input: text });
    expect(viaStdin.stdout).toMatch(/^Final estimate: PPL = \d+\.\d{4} \+\/- \d+\.\d{5}\n$/);
    const base = path.join(dir, "stories.kld");
    const w = await runCli(["perplexity", sharedModel("stories260K-Q8_0.gguf"), "--chunks", "2", "-t", "1", "--kl-divergence-base", base], { input: text });
    // The same figure; the error's last digit may differ (writing the base reads whole logit rows, another sum order).
    const estimate = (stdout: string) => /PPL = (\d+\.\d+) \+\/- (\d+\.\d+)/.exec(stdout)!.slice(1).map(Number);
    expect(estimate(w.stdout)[0]).toBe(estimate(viaStdin.stdout)[0]);
    expect(Math.abs(estimate(w.stdout)[1]! - estimate(viaStdin.stdout)[1]!)).toBeLessThanOrEqual(2e-5);
    // llama-perplexity's layout: header, 2·512 tokens, 2·255 rows of (512 + 4) uint16
    expect(fs.statSync(base).size).toBe(20 + 4 * 1024 + 2 * 255 * 516 * 2);
    const k = await runCli(["perplexity", sharedModel("stories260K-Q8_0.gguf"), "-t", "1", "--kl-divergence-base", base, "--kl-divergence"]);
    expect(k.code).toBe(0);
    expect(k.stdout).toMatch(/^====== Perplexity statistics ======\n/);
    expect(k.stdout).toMatch(/\nMean    KLD: +-?0\.00000\d ± +0\.00000\d\n/);
    const json = JSON.parse((await runCli(["perplexity", sharedModel("stories260K-Q8_0.gguf"), "-t", "1", "--kl-divergence-base", base, "--kl-divergence", "--json"])).stdout);
    // The same model against itself: only the file's 16-bit rounding separates them.
    expect(Math.abs(json.klDivergence.kld.value)).toBeLessThan(1e-5);
    expect(json.klDivergence.sameTop.value).toBeGreaterThan(0.99);
    expect(json.ppl.toFixed(4)).toBe(/PPL = (\d+\.\d{4})/.exec(w.stdout)![1]);
  });
});
