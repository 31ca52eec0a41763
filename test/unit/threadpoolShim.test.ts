import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../helpers/shared.js";

const shimBuilt = fs.existsSync(path.join(repoRoot, "dist", "native", "threadpool.node"));
const skip = process.platform !== "linux" ? "Linux only" : !shimBuilt ? "dist/native/threadpool.node was not built: no C compiler at install" : "";

/** Runs a few lines against the built engine module in a fresh process (the shim is process-wide). */
function statusAfter(body: string, env: Record<string, string> = {}): Record<string, unknown> {
  const script = `
    const { loadThreadpoolShim, threadpoolStatus } = await import(${JSON.stringify(path.join(repoRoot, "dist", "engine", "threadpool.js"))});
    ${body}
    console.log(JSON.stringify(threadpoolStatus()));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env }, encoding: "utf8" });
  return JSON.parse(out) as Record<string, unknown>;
}

describe.skipIf(skip !== "")(`the threadpool shim's guards${skip ? ` [skipped: ${skip}]` : ""}`, () => {
  it("is not loaded for a llama.cpp release its declarations were not checked against", () => {
    const status = statusAfter(`loadThreadpoolShim({ llamaCppRelease: "v9.9.9" });`);
    expect(status).toMatchObject({ loaded: false, enabled: false, decodes: 0 });
    expect(status.problem).toMatch(/not checked against llama\.cpp v9\.9\.9/);
  });

  it("LMRUN_THREADPOOL=0 keeps it out of the process", () => {
    const status = statusAfter(`loadThreadpoolShim({ llamaCppRelease: "v0.5.0" });`, { LMRUN_THREADPOOL: "0" });
    expect(status).toMatchObject({ loaded: false, problem: "turned off by LMRUN_THREADPOOL=0" });
  });

  it("loaded before any llama.cpp is in the process, it says so and stays harmless", () => {
    const status = statusAfter(`const { VERIFIED_LLAMA_CPP_RELEASE } = await import(${JSON.stringify(path.join(repoRoot, "dist", "engine", "threadpool.js"))});
      loadThreadpoolShim({ llamaCppRelease: VERIFIED_LLAMA_CPP_RELEASE });`);
    expect(status).toMatchObject({ loaded: true, enabled: false, poolsCreated: 0, problem: "libllama is not loaded" });
  });

  it("a greedy request holds the adaptive thread count for its whole answer, and only a greedy one", () => {
    // llama.cpp's greedy text depends on the thread count past a few hundred tokens: a count switched
    // mid-answer made the same request answer differently run after run.
    const engine = (name: string) => JSON.stringify(path.join(repoRoot, "dist", "engine", name));
    const script = `
      const { threadpoolStatus } = await import(${engine("threadpool.js")});
      const { loadModel } = await import(${engine("model.js")});
      const { generate } = await import(${engine("generate.js")});
      const loaded = await loadModel(${JSON.stringify(path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf"))}, { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 2, adaptiveThreads: true });
      const seen = {};
      for (const temperature of [0, 0.8]) {
        const holds = new Set();
        await generate(loaded, { prompt: "Once upon a time", chat: false, maxTokens: 16, stop: [], truncate: false, sampling: { temperature, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, seed: 1 } }, {
          onText: () => holds.add(threadpoolStatus().adaptiveHolds),
        });
        seen[temperature] = [...holds];
      }
      seen.after = threadpoolStatus().adaptiveHolds;
      seen.adaptive = threadpoolStatus().adaptive;
      await loaded.dispose();
      console.log(JSON.stringify(seen));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, UV_THREADPOOL_SIZE: "1" }, encoding: "utf8" });
    const seen = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(seen).toEqual({ "0": [1], "0.8": [0], after: 0, adaptive: true });
  });

  it("a generation-only context reserves logits for one token a sequence (llama-server's sizing) and answers as a plain one", () => {
    const engine = (name: string) => JSON.stringify(path.join(repoRoot, "dist", "engine", name));
    const script = `
      const { threadpoolStatus } = await import(${engine("threadpool.js")});
      const { loadModel } = await import(${engine("model.js")});
      const { generate } = await import(${engine("generate.js")});
      const modelPath = ${JSON.stringify(path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf"))};
      const request = (prompt) => ({ prompt, chat: false, maxTokens: 24, stop: [], truncate: false, sampling: { temperature: 0, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, seed: 1 } });
      // A long prompt (one batch of many tokens) and a short one, at once on two sequences.
      const prompts = ["Once upon a time", Array.from({ length: 40 }, () => "The cat sat on the mat.").join(" ")];
      const answers = {};
      for (const generationOnly of [false, true]) {
        const loaded = await loadModel(modelPath, { gpu: "cpu", gpuLayers: 0, contextSize: 512, threads: 1, sequences: 2, generationOnly });
        answers[generationOnly] = (await Promise.all(prompts.map((p) => generate(loaded, request(p))))).map((r) => r.text);
        answers["limited" + generationOnly] = threadpoolStatus().outputLimitedContexts;
        await loaded.dispose();
      }
      console.log(JSON.stringify(answers));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    const answers = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
    // node-llama-cpp makes two contexts when loading (one to measure, then the real one): both are limited.
    expect([answers.limitedfalse, answers.limitedtrue]).toEqual([0, 2]);
    expect(answers.true).toEqual(answers.false);
    expect((answers.true as string[]).every((text) => text.length > 20)).toBe(true);
  });

  it("gives malloc's free pages back (malloc_trim) once a model is loaded, and the engine's answers are unchanged by it", () => {
    const engine = (name: string) => JSON.stringify(path.join(repoRoot, "dist", "engine", name));
    const script = `
      const { trimMalloc } = await import(${engine("threadpool.js")});
      const { loadModel } = await import(${engine("model.js")});
      const { generate } = await import(${engine("generate.js")});
      const before = trimMalloc();
      const loaded = await loadModel(${JSON.stringify(path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf"))}, { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 1 });
      const request = { prompt: "Once upon a time", chat: false, maxTokens: 16, stop: [], truncate: false, sampling: { temperature: 0, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, seed: 1 } };
      const first = (await generate(loaded, request)).text;
      const trimmed = trimMalloc();
      const second = (await generate(loaded, request)).text;
      await loaded.dispose();
      console.log(JSON.stringify({ before, trimmed, same: first === second && first.length > 10 }));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    // Before a model loads the shim is not in the process: nothing to call.
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual({ before: false, trimmed: true, same: true });
  });
});
