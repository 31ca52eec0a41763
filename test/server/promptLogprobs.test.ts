import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { writeInfillOracle } from "../helpers/infillModel.js";
import { hasShared, sharedModel, sharedTitle } from "../helpers/shared.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * Prompt log-probabilities (legacy completions' `echo` with `logprobs`, token-id prompts, several prompts in one
 * request) and the tokenizer endpoints: what lm-evaluation-harness's `local-completions` model sends for its
 * loglikelihood tasks, through the real `openai` package. The values are checked against the answer tokens'
 * own log-probabilities (which test/server/logprobs.test.ts checks against llama-server's).
 */

const model135m = "llama2vocab-135m-shape-random-Q4_K_M.gguf";
let server: ServeProcess;
let openai: OpenAI;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-prompt-logprobs-"));
  const oracle = writeInfillOracle(path.join(dir, "infill-oracle.gguf"));
  server = await startServe(["tiny", oracle, ...(hasShared ? [sharedModel(model135m)] : []), "-c", "1024", "--parallel", "2", "--keep-alive", "-1"]);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  fs.rmSync(dir, { recursive: true, force: true });
});

type CompletionLogprobs = { tokens: string[]; token_logprobs: Array<number | null>; top_logprobs: Array<Record<string, number> | null>; text_offset: number[] };
const logprobsOf = (choice: { logprobs: unknown }) => choice.logprobs as CompletionLogprobs;

/** lm-evaluation-harness's parse_logprobs: the continuation's summed log-probability and whether each of its tokens was the greedy pick. */
function lmEvalScore(logprobs: CompletionLogprobs, contextLength: number): { logprob: number; greedy: boolean } {
  const tokens = logprobs.token_logprobs.slice(contextLength, -1) as number[];
  const tops = logprobs.top_logprobs.slice(contextLength, -1) as Array<Record<string, number>>;
  return { logprob: tokens.reduce((sum, x) => sum + x, 0), greedy: tokens.every((x, i) => x === Math.max(...Object.values(tops[i]!))) };
}

async function tokenize(text: string, model = "tiny"): Promise<number[]> {
  const answer = await request(`${server.url}/tokenize`, { method: "POST", json: { model, prompt: text, add_special_tokens: false } });
  expect(answer.status).toBe(200);
  return answer.body.tokens;
}

describe("lmrun serve: prompt log-probabilities (echo + logprobs)", () => {
  it("score the prompt with the values its own generation gave, the first token null, alternatives most likely first", async () => {
    const prompt = "Once upon a time";
    const generated = await openai.completions.create({ model: "tiny", prompt, max_tokens: 8, temperature: 0, logprobs: 2 });
    const answer = generated.choices[0]!;
    const answerLogprobs = logprobsOf(answer);
    const scored = await openai.completions.create({ model: "tiny", prompt: prompt + answer.text, max_tokens: 0, echo: true, logprobs: 2 });
    const choice = scored.choices[0]!;
    expect(choice.text).toBe(prompt + answer.text);
    expect(choice.finish_reason).toBe("length");
    expect(scored.usage?.completion_tokens).toBe(0);
    const lp = logprobsOf(choice);
    // The prompt's own tokens (the BOS lmrun puts before them is not one): the first is scored given that BOS.
    expect(lp.tokens.join("")).toBe(` ${prompt}${answer.text}`);
    expect(lp.tokens.length).toBe(scored.usage!.prompt_tokens - 1);
    expect(lp.token_logprobs[0]).toBeLessThan(0);
    // The answer's tokens, scored as a prompt, have the log-probabilities their generation reported.
    const tail = lp.token_logprobs.slice(-answerLogprobs.tokens.length);
    expect(lp.tokens.slice(-answerLogprobs.tokens.length)).toEqual(answerLogprobs.tokens);
    tail.forEach((value, i) => expect(Math.abs(value! - answerLogprobs.token_logprobs[i]!)).toBeLessThan(1e-4));
    for (const [i, top] of lp.top_logprobs.entries()) {
      const values = Object.values(top!);
      expect(values.length).toBeLessThanOrEqual(2);
      expect(values[0]!).toBeGreaterThanOrEqual(values[1] ?? -Infinity);
      expect(lp.token_logprobs[i]!).toBeLessThanOrEqual(values[0]! + 1e-9);
    }
    // Offsets run through the tokens' texts.
    expect(lp.text_offset.slice(0, 3)).toEqual([0, lp.tokens[0]!.length, lp.tokens[0]!.length + lp.tokens[1]!.length]);
  });

  it("lm-evaluation-harness's loglikelihood request: token ids in, one entry per id (and the one generated), its parse gives the text's score", async () => {
    // As lm-evaluation-harness splits a request: the whole text tokenised, the context's tokens taken off its front.
    const contextText = "Once upon a time, there was a little";
    const context = await tokenize(contextText);
    const continuation = (await tokenize(`${contextText} girl`)).slice(context.length);
    const unlikely = (await tokenize(`${contextText} spaceship`)).slice(context.length);
    // Exactly the payload lm_eval/models/openai_completions.py sends (batch of two requests).
    const answer = await openai.completions.create({
      model: "tiny",
      prompt: [
        [...context, ...continuation],
        [...context, ...unlikely],
      ],
      temperature: 0,
      max_tokens: 1,
      logprobs: 1,
      seed: 1234,
      echo: true,
    });
    expect(answer.choices.map((c) => c.index)).toEqual([0, 1]);
    const [likely, other] = answer.choices.map((c) => logprobsOf(c));
    expect(likely!.token_logprobs.length).toBe(context.length + continuation.length + 1);
    // The echoed text is the ids' text, then the generated token's, whose offset is where the prompt's text ends.
    const text = answer.choices[0]!.text;
    expect(text.startsWith("Once upon a time, there was a little girl")).toBe(true);
    expect(likely!.text_offset.at(-1)).toBe(text.length - likely!.tokens.at(-1)!.length);
    expect(other!.token_logprobs.length).toBe(context.length + unlikely.length + 1);
    const girl = lmEvalScore(likely!, context.length);
    const spaceship = lmEvalScore(other!, context.length);
    expect(girl.logprob).toBeLessThan(0);
    expect(girl.logprob).toBeGreaterThan(spaceship.logprob + 2);
    expect(girl.greedy).toBe(true);
    expect(spaceship.greedy).toBe(false);
    // The same text sent as text scores the same (its tokens are the same ones).
    const asText = await openai.completions.create({ model: "tiny", prompt: "Once upon a time, there was a little girl", max_tokens: 0, echo: true, logprobs: 1 });
    const textLogprobs = logprobsOf(asText.choices[0]!);
    expect(lmEvalScore({ ...textLogprobs, token_logprobs: [...textLogprobs.token_logprobs, 0], top_logprobs: [...textLogprobs.top_logprobs, {}] }, context.length).logprob).toBeCloseTo(girl.logprob, 4);
    // Several prompts are answered each as alone.
    const alone = await openai.completions.create({ model: "tiny", prompt: [...context, ...unlikely], temperature: 0, max_tokens: 1, logprobs: 1, echo: true });
    expect(logprobsOf(alone.choices[0]!).token_logprobs).toEqual(other!.token_logprobs);
    expect(answer.usage?.prompt_tokens).toBe(2 * (context.length + 1) + continuation.length + unlikely.length);
  });

  it("an answer that stops at the end token lists it last, so lm-evaluation-harness's last entry is the generated token", async () => {
    // The bigram oracle (test/helpers/infillModel.ts): after a letter the end token is all but certain.
    const answer = await openai.completions.create({ model: "infill-oracle.gguf", prompt: "ab", max_tokens: 4, temperature: 0, logprobs: 1 });
    const choice = answer.choices[0]!;
    expect(choice.finish_reason).toBe("stop");
    expect(choice.text).toBe("");
    // Every sampled token, the end token included (empty text).
    expect(answer.usage!.completion_tokens).toBe(1);
    expect(logprobsOf(choice).tokens).toEqual([""]);
    expect(logprobsOf(choice).token_logprobs[0]).toBeGreaterThan(-1e-3);
    // As lm-evaluation-harness sends context "a" + continuation "bc": one entry a prompt token, then the generated (end) token.
    const whole = await tokenize("abc", "infill-oracle.gguf");
    const context = await tokenize("a", "infill-oracle.gguf");
    expect(whole.length - context.length).toBe(2);
    const scored = await openai.completions.create({ model: "infill-oracle.gguf", prompt: [whole], max_tokens: 1, temperature: 0, logprobs: 1, echo: true });
    const lp = logprobsOf(scored.choices[0]!);
    expect(lp.token_logprobs.length).toBe(whole.length + 1);
    expect(lp.tokens.at(-1)).toBe("");
    expect(lp.token_logprobs.at(-1)).toBeGreaterThan(-1e-3);
    // Its parse reads exactly the continuation's two tokens (without the end token's entry it would read one),
    // each far below the end token that was the greedy pick.
    expect(lp.token_logprobs.slice(context.length, -1)).toHaveLength(2);
    const score = lmEvalScore(lp, context.length);
    const each = lp.token_logprobs[context.length]!;
    expect(each).toBeLessThan(-20);
    expect(score.logprob).toBeCloseTo(2 * each, 3);
    expect(score.greedy).toBe(false);
  });

  it.skipIf(!hasShared)(sharedTitle("on a 32k vocabulary, while other requests generate beside it: the same scores, and the server stays up"), async () => {
    const prompt = "The quick brown fox jumps over the lazy dog. Once upon a time";
    const generated = await openai.completions.create({ model: model135m, prompt, max_tokens: 6, temperature: 0, logprobs: 0 });
    const alongside = Array.from({ length: 2 }, () => openai.completions.create({ model: model135m, prompt: "Hello there", max_tokens: 48, temperature: 0 }));
    const scored = await openai.completions.create({ model: model135m, prompt: prompt + generated.choices[0]!.text, max_tokens: 0, echo: true, logprobs: 0 });
    await Promise.all(alongside);
    const expected = logprobsOf(generated.choices[0]!).token_logprobs as number[];
    const got = logprobsOf(scored.choices[0]!).token_logprobs.slice(-expected.length) as number[];
    // The generation's context and the scorer's batch the maths differently: equal to float rounding.
    got.forEach((value, i) => expect(Math.abs(value - expected[i]!)).toBeLessThan(2e-3));
    expect((await request(`${server.url}/health`)).status).toBe(200);
  });

  it("streamed: the first chunk is the echoed prompt with its tokens' scores, then the answer's chunks, offsets running on", async () => {
    const ids = await tokenize("Once upon a time");
    for (const prompt of ["Once upon a time", ids]) {
      const whole = await openai.completions.create({ model: "tiny", prompt, max_tokens: 6, temperature: 0, echo: true, logprobs: 1 });
      const chunks: Array<{ text: string; logprobs: CompletionLogprobs | null }> = [];
      const stream = await openai.completions.create({ model: "tiny", prompt, max_tokens: 6, temperature: 0, echo: true, logprobs: 1, stream: true });
      for await (const chunk of stream) for (const choice of chunk.choices) chunks.push({ text: choice.text, logprobs: choice.logprobs as CompletionLogprobs | null });
      const wholeLogprobs = logprobsOf(whole.choices[0]!);
      expect(chunks.map((c) => c.text).join("")).toBe(whole.choices[0]!.text);
      expect(chunks[0]!.text).toBe("Once upon a time");
      expect(chunks[0]!.logprobs!.token_logprobs[0]).toBeLessThan(0);
      const joined = chunks.flatMap((c) => (c.logprobs ? c.logprobs.tokens.map((token, i) => [token, c.logprobs!.token_logprobs[i], c.logprobs!.text_offset[i]]) : []));
      expect(joined).toEqual(wholeLogprobs.tokens.map((token, i) => [token, wholeLogprobs.token_logprobs[i], wholeLogprobs.text_offset[i]]));
    }
  });

  it("a prompt longer than any before (the scorer's context made again, larger) scores its start as the shorter one did", async () => {
    const short = "Once upon a time, there was a little girl named Lily.";
    const long = `${short} ${"She liked to play in the park with her friends every day. ".repeat(50)}`;
    const first = logprobsOf((await openai.completions.create({ model: "tiny", prompt: short, max_tokens: 0, echo: true, logprobs: 0 })).choices[0]!);
    const longer = await openai.completions.create({ model: "tiny", prompt: long, max_tokens: 0, echo: true, logprobs: 0 });
    expect(longer.usage!.prompt_tokens).toBeGreaterThan(600);
    const second = logprobsOf(longer.choices[0]!);
    expect(second.tokens.slice(0, first.tokens.length)).toEqual(first.tokens);
    second.token_logprobs.slice(0, first.tokens.length).forEach((value, i) => expect(Math.abs(value! - first.token_logprobs[i]!)).toBeLessThan(1e-4));
    // And the short one again, on the larger context.
    const again = logprobsOf((await openai.completions.create({ model: "tiny", prompt: short, max_tokens: 0, echo: true, logprobs: 0 })).choices[0]!);
    again.token_logprobs.forEach((value, i) => expect(Math.abs(value! - first.token_logprobs[i]!)).toBeLessThan(1e-4));
  });

  it("refuses what it cannot do with a 400 that says why, and goes on serving", async () => {
    const post = (json: object) => request(`${server.url}/v1/completions`, { method: "POST", json: { model: "tiny", ...json } });
    const badId = await post({ prompt: [5, 99999], max_tokens: 1 });
    expect(badId.status).toBe(400);
    expect(badId.body.error.message).toMatch(/99999, which is not a token of this model \(its vocabulary has 512\)/);
    expect(badId.body.error.param).toBe("prompt");
    expect((await post({ prompt: "x", max_tokens: 0 })).body.error.param).toBe("max_tokens");
    const several = await post({ prompt: ["a", "b"], stream: true });
    expect(several.status).toBe(400);
    expect(several.body.error.message).toMatch(/not streamed/);
    expect((await post({ prompt: ["a", [1, 2]] })).body.error.param).toBe("prompt");
    expect((await post({ prompt: Array.from({ length: 65 }, () => "a") })).body.error.message).toMatch(/at most 64/);
    const tooLong = await post({ prompt: "once ".repeat(1200), max_tokens: 0, echo: true, logprobs: 0 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.code).toBe("context_length_exceeded");
    const fine = await post({ prompt: "Once", max_tokens: 0, echo: true, logprobs: 0 });
    expect(fine.status).toBe(200);
    expect(fine.body.choices[0].logprobs.tokens).toEqual([" Once"]);
  });
});

describe("lmrun serve: tokenizer endpoints (llama-server's and vLLM's)", () => {
  it("tokenize and detokenize round trip; special tokens by the shape's defaults; /tokenizer_info for a client-side tokenizer", async () => {
    // llama-server's shape: no BOS unless add_special, special tokens parsed, pieces on request.
    const plain = await request(`${server.url}/tokenize`, { method: "POST", json: { content: "Once upon" } });
    expect(plain.status).toBe(200);
    expect(plain.body.tokens.length).toBe(2);
    const special = await request(`${server.url}/tokenize`, { method: "POST", json: { content: "Once upon", add_special: true, with_pieces: true } });
    expect(special.body.tokens).toEqual([
      { id: 1, piece: "<s>" },
      { id: plain.body.tokens[0], piece: " Once" },
      { id: plain.body.tokens[1], piece: " upon" },
    ]);
    // vLLM's shape: BOS by default, count and context length.
    const vllm = await request(`${server.url}/tokenize`, { method: "POST", json: { model: "tiny", prompt: "Once upon" } });
    expect(vllm.body).toEqual({ tokens: [1, ...plain.body.tokens], count: 3, max_model_len: 1024 });
    const back = await request(`${server.url}/detokenize`, { method: "POST", json: { tokens: plain.body.tokens } });
    // The text that tokenises back to those ids (without an SPM word-start space, as Hugging Face's decode gives it).
    expect(back.body).toEqual({ content: "Once upon", prompt: "Once upon" });
    const bad = await request(`${server.url}/detokenize`, { method: "POST", json: { tokens: [1, -3] } });
    expect(bad.status).toBe(400);
    const info = await request(`${server.url}/tokenizer_info`);
    expect(info.body).toMatchObject({ bos_token: "<s>", eos_token: "</s>", model_max_length: 1024, vocab_size: 512 });
    // lm-evaluation-harness reads the end token's id by tokenizing its text.
    expect(await tokenize(info.body.eos_token)).toEqual([2]);
    // Errors in llama-server's shape, as /infill's.
    const unknown = await request(`${server.url}/tokenize`, { method: "POST", json: { model: "../etc/passwd", prompt: "x" } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 404, type: "invalid_request_error" });
  });
});
