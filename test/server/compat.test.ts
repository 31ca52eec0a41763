import OpenAI from "openai";
import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { packageVersion } from "../../src/cli/version.js";
import { hasShared, sharedModel, sharedTitle } from "../helpers/shared.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * What real clients send that the API references allow and lmrun once refused or answered wrongly:
 * Go's ollama client's empty strings, Open WebUI's num_ctx, -1 seeds, no max_tokens, conversations
 * longer than the context, embeddings compared by dot product, model pickers reading /api/show.
 * The server has a small context (256) and `-n 8`, so the limits show in a few tokens.
 */

const randomModel = "llama2vocab-135m-shape-random-Q4_K_M.gguf"; // random weights: it never stops by itself
const chatModel = "stories260K-Q8_0-synthetic-chat-template.gguf";
const CONTEXT = 256;

let server: ServeProcess;
let ollama: Ollama;
let openai: OpenAI;

beforeAll(async () => {
  const shared = hasShared ? [sharedModel(randomModel), sharedModel(chatModel)] : [];
  server = await startServe(["tiny", ...shared, "--ctx", String(CONTEXT), "-n", "8", "--parallel", "1", "--keep-alive", "-1"]);
  ollama = new Ollama({ host: server.url });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

/** A conversation of about 2000 tokens: far past the 256-token context. */
function longConversation(model: string) {
  const messages: Array<{ role: string; content: string }> = [{ role: "system", content: "You tell stories." }];
  for (let i = 0; i < 30; i++) {
    messages.push({ role: "user", content: `Tell me about the dog number ${i} who ran in the park.` });
    messages.push({ role: "assistant", content: "The dog ran and played in the sun with a ball." });
  }
  messages.push({ role: "user", content: "And the cat?" });
  return { model, messages };
}

describe("lmrun serve: what real clients send", () => {
  it("Go's ollama client: empty template, system and suffix are unset; /api/version is an ollama API level (clients gate on it) with lmrun's own beside it", async () => {
    const answer = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "Once", suffix: "", system: "", template: "", options: null, stream: false } });
    expect(answer.status).toBe(200);
    expect(answer.body.eval_count).toBe(8); // serve -n 8: a request's default
    const version = await request(`${server.url}/api/version`);
    const [major, minor] = String(version.body.version).split(".").map(Number);
    expect(major! > 0 || minor! >= 7).toBe(true); // VS Code's Copilot wants at least 0.6.4
    expect(version.body.lmrun.version).toBe(packageVersion());
    expect((await request(`${server.url}/api/tags`, { method: "HEAD" })).status).toBe(200);
    // raw has no template for a system text to go in: refused as ollama refuses it.
    const rawSystem = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "x", raw: true, system: "be nice", stream: false } });
    expect(rawSystem.status).toBe(400);
  });

  it("ollama's context: a templated answer returns its tokens; a prompt sent with them continues that exchange (found in the slot's cache); past the context its oldest tokens go; raw mode and foreign ids are 400s", async () => {
    const model = hasShared ? chatModel : "tiny";
    const options = { temperature: 0, num_predict: 6 };
    const first = await ollama.generate({ model, prompt: "Tom had a red ball", options });
    const alone = await ollama.generate({ model, prompt: "Where is it", options });
    // The exchange's tokens: the prompt's, then the answer's.
    expect(first.context.length).toBeGreaterThan(first.prompt_eval_count);
    const BOS = 1; // both models' beginning token
    const body = (tokens: number[]) => (tokens[0] === BOS ? tokens.slice(1) : tokens);
    const earlier = body(first.context);
    const turn = body(alone.context.slice(0, alone.prompt_eval_count));
    const next = await ollama.generate({ model, prompt: "Where is it", context: first.context, options });
    // The earlier exchange goes in whole, then this turn as the template renders it alone, after one beginning token.
    expect(next.prompt_eval_count).toBe(1 + earlier.length + turn.length);
    expect(next.context.slice(0, 1 + earlier.length)).toEqual([BOS, ...earlier]);
    expect(next.context.slice(1 + earlier.length, next.prompt_eval_count)).toEqual(turn);
    // Streamed, the last object carries the same tokens; the one slot holds the continued prompt already.
    const streamed = await ollama.generate({ model, prompt: "Where is it", context: first.context, options, stream: true });
    let last: any;
    for await (const part of streamed) last = part;
    expect(last.context).toEqual(next.context);
    expect(last.lmrun.cachedPromptTokens).toBe(next.prompt_eval_count - 1);
    // Past the slot's context: the oldest earlier tokens go (truncate, ollama's default), or a 400 without it.
    const long = [BOS, ...Array.from({ length: 20 }, () => earlier).flat()];
    expect(long.length).toBeGreaterThan(CONTEXT);
    const cut = await ollama.generate({ model, prompt: "Where is it", context: long, options });
    expect(cut.prompt_eval_count).toBeLessThan(CONTEXT);
    expect(cut.lmrun.truncatedPromptTokens).toBe(long.length + turn.length - cut.prompt_eval_count);
    expect(cut.context.slice(cut.prompt_eval_count - turn.length, cut.prompt_eval_count)).toEqual(turn);
    const refused = await request(`${server.url}/api/generate`, { json: { model, prompt: "Where is it", context: long, truncate: false, stream: false } });
    expect(refused.status).toBe(400);
    // Ids this model does not have, a raw prompt with a context, a context that is not a list of ids.
    const foreign = await ollama.generate({ model, prompt: "x", context: [BOS, 999_999] }).catch((e) => e);
    expect(foreign.status_code).toBe(400);
    expect(foreign.error).toMatch(/999999, which is not a token of this model/);
    const raw = await ollama.generate({ model, prompt: "x", raw: true, context: first.context }).catch((e) => e);
    expect(raw.status_code).toBe(400);
    expect(raw.error).toMatch(/raw mode does not support "context"/);
    const notIds = await request(`${server.url}/api/generate`, { json: { model, prompt: "x", context: ["a"], stream: false } });
    expect(notIds.status).toBe(400);
    expect(notIds.body.error).toMatch(/"context" must be an array of token ids/);
    // A raw answer has no context (ollama's "raw mode will not return a context").
    const rawAnswer = await ollama.generate({ model, prompt: "x", raw: true, options });
    expect(rawAnswer.context).toBeUndefined();
  });

  it("ollama options clients pass through: num_ctx past the server's, seed -1 and top_k -1 are accepted; the model name is echoed as sent", async () => {
    const answer = await ollama.generate({ model: "tiny:latest", prompt: "Once", options: { num_ctx: 8192, seed: -1, top_k: -1, num_predict: 3 } });
    expect(answer.eval_count).toBe(3);
    expect(answer.model).toBe("tiny:latest");
    const lmrun = (answer as unknown as { lmrun: { sampling: { topK: number; seed: number } } }).lmrun;
    expect(lmrun.sampling.topK).toBe(0);
    expect(lmrun.sampling.seed).toBeGreaterThanOrEqual(0);
    const streamed = await ollama.generate({ model: "tiny:latest", prompt: "Once", stream: true, options: { num_predict: 3 } });
    for await (const part of streamed) expect(part.model).toBe("tiny:latest");
  });

  it.skipIf(!hasShared)(sharedTitle("no max_tokens / num_predict -1: generation ends where the slot's context does (llama.cpp's tools do not shift it), finish 'length'"), async () => {
    const ollamaAnswer = await ollama.generate({ model: randomModel, prompt: "Once upon a time", options: { num_predict: -1, temperature: 0 } });
    expect(ollamaAnswer.done_reason).toBe("length");
    expect(ollamaAnswer.prompt_eval_count + ollamaAnswer.eval_count).toBe(CONTEXT);
    // More than fits after the prompt: cut at the context's end, not shifted past it.
    const openaiAnswer = await openai.completions.create({ model: randomModel, prompt: "Once upon a time", max_tokens: CONTEXT - 1, temperature: 0 });
    expect(openaiAnswer.choices[0]!.finish_reason).toBe("length");
    expect(openaiAnswer.usage!.total_tokens).toBe(CONTEXT);
    // A fixed large num_predict (clients send 4096 whatever the model) is ollama's cap, not an error;
    // OpenAI's max_tokens past the context stays a 400, as absurd.
    const large = await ollama.generate({ model: randomModel, prompt: "Once upon a time", options: { num_predict: 4096, temperature: 0 } });
    expect(large.prompt_eval_count + large.eval_count).toBe(CONTEXT);
    const absurd = await openai.completions.create({ model: randomModel, prompt: "Once", max_tokens: 4096 }).catch((e) => e);
    expect(absurd).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it.skipIf(!hasShared)(sharedTitle("a conversation longer than the context: ollama drops its oldest turns (its default), OpenAI answers 400 context_length_exceeded"), async () => {
    const { model, messages } = longConversation(chatModel);
    const cut = await ollama.chat({ model, messages, options: { temperature: 0, num_predict: 8 } });
    expect(cut.prompt_eval_count).toBeLessThan(CONTEXT);
    const lmrun = (cut as unknown as { lmrun: { truncatedPromptTokens: number } }).lmrun;
    expect(lmrun.truncatedPromptTokens).toBeGreaterThan(1000);
    // A last message too long to leave the reply half the context still goes, older turns dropped.
    const paste = "The cat sat on the mat and looked at the dog. ".repeat(7);
    const pasted = await ollama.chat({ model, messages: [...messages.slice(0, -1), { role: "user", content: paste }], options: { temperature: 0 } });
    expect(pasted.prompt_eval_count).toBeGreaterThan(CONTEXT / 2);
    expect(pasted.prompt_eval_count).toBeLessThan(CONTEXT);
    const refused = await request(`${server.url}/api/chat`, { json: { model, messages, truncate: false, stream: false } });
    expect(refused.status).toBe(400);
    const viaOpenAI = await openai.chat.completions.create({ model, messages: messages as never, max_tokens: 4 }).catch((e) => e);
    expect(viaOpenAI).toBeInstanceOf(OpenAI.BadRequestError);
    expect(viaOpenAI.code).toBe("context_length_exceeded");
    expect(viaOpenAI.param).toBe("messages");
  });

  it("embeddings have unit length (OpenAI, /api/embed), dimensions cut and renormalise, the legacy /api/embeddings stays raw; empty input is a 400 or a preload", async () => {
    const [a, b] = (await openai.embeddings.create({ model: "tiny", input: ["hello", "hello world"], encoding_format: "float" })).data;
    expect(norm(a!.embedding)).toBeCloseTo(1, 5);
    expect(norm(b!.embedding)).toBeCloseTo(1, 5);
    const short = await openai.embeddings.create({ model: "tiny", input: "hello", dimensions: 4, encoding_format: "float" });
    expect(short.data[0]!.embedding).toHaveLength(4);
    expect(norm(short.data[0]!.embedding)).toBeCloseTo(1, 5);
    const unit = (await ollama.embed({ model: "tiny", input: "hello" })).embeddings[0]!;
    expect(norm(unit)).toBeCloseTo(1, 5);
    const raw = (await ollama.embeddings({ model: "tiny", prompt: "hello" })).embedding;
    expect(norm(raw)).toBeGreaterThan(2);
    // The same direction: the legacy vector is the unit one scaled.
    expect(raw[0]! / norm(raw)).toBeCloseTo(unit[0]!, 5);
    const empty = await openai.embeddings.create({ model: "tiny", input: ["a", ""] }).catch((e) => e);
    expect(empty).toBeInstanceOf(OpenAI.BadRequestError);
    const preload = await request(`${server.url}/api/embed`, { json: { model: "tiny" } });
    expect(preload.body).toMatchObject({ model: "tiny", embeddings: [] });
    const tooBig = await openai.embeddings.create({ model: "tiny", input: "x", dimensions: 100_000 }).catch((e) => e);
    expect(tooBig).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it("an input longer than the context is cut by /api/embed (ollama's default truncate) and refused when truncate is false", async () => {
    const input = "Once upon a time there was a dog. ".repeat(80);
    const cut = await ollama.embed({ model: "tiny", input });
    expect(cut.embeddings[0]!.length).toBeGreaterThan(8);
    expect(cut.prompt_eval_count).toBeLessThan(CONTEXT);
    const refused = await ollama.embed({ model: "tiny", input, truncate: false }).catch((e) => e);
    expect(refused.status_code).toBe(400);
  });

  it.skipIf(!hasShared)(sharedTitle("/api/show and /api/tags read the file, loaded or not: context length, template, family, size and quantisation; capabilities as the model has them"), async () => {
    const shown = await ollama.show({ model: chatModel });
    expect(shown.template).toContain("Assistant:");
    expect(shown.model_info["llama.context_length"]).toBeGreaterThan(0);
    // The whole header, the vocabulary elided as ollama elides it.
    expect(shown.model_info["llama.block_count"]).toBeGreaterThan(0);
    expect(shown.model_info["tokenizer.ggml.tokens"]).toBeNull();
    expect(shown.details).toMatchObject({ family: "llama", quantization_level: "Q8_0" });
    expect(shown.capabilities).toEqual(["completion"]); // its template takes no tools, and it does not pool
    const tags = await ollama.list();
    const random = tags.models.find((m) => m.name === randomModel)!;
    expect(random.details).toMatchObject({ family: "llama", quantization_level: "Q4_K_M" });
    expect(random.details.parameter_size).toMatch(/^\d+M$/);
  });

  it("OpenAI: echo, an empty suffix, completions' logprobs count with echo, a malformed model id", async () => {
    const echoed = await openai.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 4, temperature: 0, echo: true });
    const plain = await openai.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 4, temperature: 0 });
    expect(echoed.choices[0]!.text).toBe(`Once upon${plain.choices[0]!.text}`);
    const suffix = await openai.completions.create({ model: "tiny", prompt: "Once", max_tokens: 2, suffix: "" });
    expect(suffix.choices).toHaveLength(1);
    // With echo, the prompt's own tokens (" Once", " upon": scored, as OpenAI's) and then the answer's, whose offsets
    // count from the start of the echoed text.
    const withLogprobs = await openai.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 4, temperature: 0, echo: true, logprobs: 2 });
    expect(withLogprobs.choices[0]!.text).toBe(echoed.choices[0]!.text);
    expect(withLogprobs.choices[0]!.logprobs!.tokens!.join("")).toBe(` Once upon${plain.choices[0]!.text}`);
    expect(withLogprobs.choices[0]!.logprobs!.text_offset![2]).toBe("Once upon".length);
    expect(withLogprobs.choices[0]!.logprobs!.top_logprobs!.every((alternatives) => Object.keys(alternatives!).length === 2)).toBe(true);
    const bestOf = await openai.completions.create({ model: "tiny", prompt: "Once", max_tokens: 2, best_of: 3 }).catch((e) => e);
    expect(bestOf).toBeInstanceOf(OpenAI.BadRequestError);
    const malformed = await request(`${server.url}/v1/models/%E0%A4%A`);
    expect(malformed.status).toBe(404);
    // Still serving.
    expect((await request(`${server.url}/health`)).status).toBe(200);
  });
});
