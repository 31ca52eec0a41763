import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCli } from "../helpers/cli.js";
import { INFILL_ORACLE, writeInfillOracle } from "../helpers/infillModel.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * Fill in the middle (code completion, as editors ask ollama and OpenAI-style servers for it): `suffix` on
 * ollama's /api/generate and OpenAI's /v1/completions, through node-llama-cpp's infill, on a GGUF written by
 * the tests whose middle is known (helpers/infillModel.ts). llama-server's /infill on that model gives the
 * same " middle" (3 tokens); it counts 23 prompt tokens to these 21, its SPM tokenisation putting a word-start
 * space before the prefix and the suffix where node-llama-cpp's does not.
 */

let dir: string;
let modelPath: string;
let server: ServeProcess;
let ollama: Ollama;
let openai: OpenAI;
const model = "code-infill-oracle.gguf";
const prefix = "def f(x):";
const suffix = "return x";

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-infill-"));
  modelPath = writeInfillOracle(path.join(dir, model));
  server = await startServe([modelPath, "tiny", "-c", "512", "--parallel", "1", "--keep-alive", "-1"]);
  ollama = new Ollama({ host: server.url });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("fill in the middle", () => {
  it("ollama's suffix: the middle, counted as node-llama-cpp lays the prompt out (the same prompt again is found in the slot's cache)", async () => {
    const answer = await ollama.generate({ model, prompt: prefix, suffix, stream: false, options: { temperature: 0 } });
    // BOS, <|fim_prefix|>, the prefix's 9 characters, <|fim_suffix|>, the suffix's 8 (its space is "▁"), <|fim_middle|>.
    expect([answer.response, answer.eval_count, answer.prompt_eval_count, answer.done_reason]).toEqual([INFILL_ORACLE.middle, INFILL_ORACLE.generatedTokens, 21, "stop"]);
    expect(answer.context).toBeUndefined();
    const again = await ollama.generate({ model, prompt: prefix, suffix, stream: false, options: { temperature: 0 } });
    expect((again as unknown as { lmrun: { cachedPromptTokens: number } }).lmrun.cachedPromptTokens).toBe(20);

    let streamed = "";
    for await (const part of await ollama.generate({ model, prompt: prefix, suffix, stream: true, options: { temperature: 0 } })) streamed += part.response;
    expect(streamed).toBe(INFILL_ORACLE.middle);
  });

  it("OpenAI's suffix on /v1/completions, with log-probabilities; echo gives the prompt, then the middle", async () => {
    const completion = await openai.completions.create({ model, prompt: prefix, suffix, temperature: 0, max_tokens: 16, logprobs: 1 });
    expect(completion.choices[0]!.text).toBe(INFILL_ORACLE.middle);
    expect(completion.usage).toMatchObject({ prompt_tokens: 21, completion_tokens: 3 });
    // Every sampled token: the end token last, with no text (legacy completions list it, as vLLM does).
    expect(completion.choices[0]!.logprobs!.tokens).toEqual([" mid", "dle", ""]);
    const echoed = await openai.completions.create({ model, prompt: prefix, suffix, temperature: 0, max_tokens: 16, echo: true });
    expect(echoed.choices[0]!.text).toBe(prefix + INFILL_ORACLE.middle);
  });

  it("llama-server's /infill (llama.vscode, llama.vim): the first model by default, its /completion shape, response_fields, streamed as its SSE", async () => {
    const whole = await request(`${server.url}/infill`, { method: "POST", json: { input_prefix: prefix, input_suffix: suffix, temperature: 0, n_predict: 16 } });
    expect(whole.status).toBe(200);
    expect(whole.body).toMatchObject({ content: INFILL_ORACLE.middle, stop: true, stop_type: "eos", tokens_predicted: 3, tokens_evaluated: 21, model, truncated: false });
    expect(whole.body.timings).toMatchObject({ predicted_n: 3 });
    expect(whole.body.timings.cache_n + whole.body.timings.prompt_n).toBe(21);

    // `prompt` (the cursor line's text) goes after the prefix, tokenised apart, as llama-server puts it;
    // llama.vscode asks for a few fields by path. input_extra has no room in a context of one batch (as there).
    const picked = await request(`${server.url}/infill`, {
      method: "POST",
      json: { input_prefix: prefix, input_suffix: suffix, prompt: "x", input_extra: [{ filename: "a.py", text: "import os" }], temperature: 0, response_fields: ["content", "timings/prompt_n", "tokens_cached", "tokens_evaluated"] },
    });
    expect(Object.keys(picked.body).sort()).toEqual(["content", "timings/prompt_n", "tokens_cached", "tokens_evaluated"]);
    expect(picked.body.tokens_evaluated).toBe(22);
    expect(picked.body.content).toBe(INFILL_ORACLE.middle);
    expect(picked.body.tokens_cached + picked.body["timings/prompt_n"]).toBe(22);

    const streamed = await request(`${server.url}/infill`, { method: "POST", json: { input_prefix: prefix, input_suffix: suffix, temperature: 0, stream: true } });
    const events = streamed.text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => JSON.parse(e.slice(6)));
    expect(events.filter((e) => !e.stop).map((e) => e.content).join("")).toBe(INFILL_ORACLE.middle);
    expect(events.at(-1)).toMatchObject({ stop: true, content: "", stop_type: "eos", tokens_predicted: 3 });

    const wrongType = await request(`${server.url}/infill`, { method: "POST", json: { input_prefix: 5 } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body).toEqual({ error: { code: 400, message: '"input_prefix" must be a string', type: "invalid_request_error" } });
    const noFim = await request(`${server.url}/infill`, { method: "POST", json: { model: "tiny", input_prefix: "a" } });
    expect(noFim.status).toBe(400);
    expect(noFim.body.error.message).toMatch(/cannot fill in the middle/);
  });

  it("input_extra (llama.vscode's other files) goes before the prompt as llama-server lays it out; what does not fit loses its start", async () => {
    // A context with room for it: llama-server gives other files the context less a batch and twice n_predict.
    // The oracle with Qwen2.5-Coder's repository tokens too: llama-server's repository layout.
    const repositoryModel = writeInfillOracle(path.join(path.dirname(modelPath), "infill-repository.gguf"), { repository: true });
    const roomy = await startServe([modelPath, repositoryModel, "-c", "2048", "-b", "512", "--parallel", "1", "--keep-alive", "-1"]);
    try {
      const infill = (extra: Array<{ filename: string; text: string }>, model?: string) =>
        request(`${roomy.url}/infill`, { method: "POST", json: { model, input_prefix: prefix, input_suffix: suffix, input_extra: extra, n_predict: 16, temperature: 0 } });
      const one = [{ filename: "a.py", text: "import os" }];
      const two = [...one, { filename: "b.py", text: "x = 1" }];
      // llama-server on this model counts 23, 53 and 79 (its SPM tokenisation puts a word-start space before
      // every text it tokenises: prefix, suffix, each separator and each chunk).
      const counts = [];
      for (const extra of [[], one, two]) {
        const answer = await infill(extra);
        expect(answer.status).toBe(200);
        expect(answer.body.content).toBe(INFILL_ORACLE.middle);
        counts.push(answer.body.tokens_evaluated);
      }
      expect(counts).toEqual([21, 50, 75]);
      // With repository tokens: "<|repo_name|>myproject", each chunk after "<|file_sep|>" and its file name, then
      // "<|file_sep|>filename" (that frame with no chunks too): llama-server counts 46, 63 and 76, four, six and
      // eight more word-start spaces. ollama's suffix has no such frame.
      const framed = [];
      for (const extra of [[], one, two]) framed.push((await infill(extra, "infill-repository.gguf")).body.tokens_evaluated);
      expect(framed).toEqual([42, 57, 68]);
      const ollama = await request(`${roomy.url}/api/generate`, { method: "POST", json: { model: "infill-repository.gguf", prompt: prefix, suffix, stream: false, options: { temperature: 0 } } });
      expect(ollama.body).toMatchObject({ response: INFILL_ORACLE.middle, prompt_eval_count: 21 });
      // The same files again: found in the slot's cache.
      expect((await infill(two)).body.tokens_cached).toBeGreaterThanOrEqual(74);
      // Far more than fits: its end is kept (the most recent chunks), the answer is the same.
      const many = Array.from({ length: 400 }, (_, i) => ({ filename: `f${i}.py`, text: `value_${i} = compute(${i})` }));
      const cut = await infill(many);
      expect(cut.status).toBe(200);
      expect(cut.body.content).toBe(INFILL_ORACLE.middle);
      expect(cut.body.tokens_evaluated).toBe(21 + 2048 - 512 - 2 * 16);
    } finally {
      expect(await roomy.stop()).toBe(0);
    }
  });

  it("a model without fill-in-the-middle tokens is a 400 that says so; /api/show and lmrun show list `insert` for one that has them", async () => {
    const refused = await request(`${server.url}/api/generate`, { method: "POST", json: { model: "tiny", prompt: "a", suffix: "b", stream: false } });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatch(/cannot fill in the middle: its vocabulary has no fill-in-the-middle tokens/);
    const openaiRefused = await openai.completions.create({ model: "tiny", prompt: "a", suffix: "b" }).catch((e) => e);
    expect(openaiRefused).toBeInstanceOf(OpenAI.BadRequestError);
    const withContext = await request(`${server.url}/api/generate`, { method: "POST", json: { model, prompt: "a", suffix: "b", context: [1, 2], stream: false } });
    expect(withContext.status).toBe(400);
    expect(withContext.body.error).toMatch(/"suffix".*"context"/);

    expect((await ollama.show({ model })).capabilities).toEqual(["completion", "insert"]);
    expect((await ollama.show({ model: "tiny" })).capabilities).toEqual(["completion"]);
    const shown = await runCli(["show", modelPath, "--json"], { home: server.home });
    expect(JSON.parse(shown.stdout).capabilities).toEqual(["completion", "insert"]);
    // Still serving.
    expect((await ollama.generate({ model, prompt: prefix, suffix, stream: false, options: { temperature: 0 } })).response).toBe(INFILL_ORACLE.middle);
  });
});
