import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { THINKING_ORACLE, writeThinkingOracle } from "../helpers/thinkingModel.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * Token log-probabilities (OpenAI's `logprobs`/`top_logprobs`, legacy completions' `logprobs: N`, the
 * Responses API's `include`, ollama's `logprobs`), through the real client packages. The values are
 * llama-server's (same llama.cpp, same model, temperature 0); the tokens are exactly the answer's text.
 */

const model135m = sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf");
let server: ServeProcess;
let openai: OpenAI;
let ollama: Ollama;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-logprobs-"));
  const oracle = writeThinkingOracle(path.join(dir, "qwen3-thinking-oracle.gguf"));
  server = await startServe(["tiny", oracle, ...(hasShared ? [model135m] : []), "-c", "1024", "--parallel", "2", "--keep-alive", "-1"]);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  ollama = new Ollama({ host: server.url });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  fs.rmSync(dir, { recursive: true, force: true });
});

type ChatLogprob = { token: string; logprob: number; bytes: number[] | null; top_logprobs: { token: string; logprob: number }[] };
const joined = (tokens: { token: string }[]) => tokens.map((t) => t.token).join("");

describe("lmrun serve: token log-probabilities", () => {
  it.skipIf(!hasShared)(`legacy completions give llama-server's values, tokens, alternatives and offsets${hasShared ? "" : ` (skipped: ${sharedSkipReason})`}`, async () => {
    const answer = await openai.completions.create({ model: "llama2vocab-135m-shape-random-Q4_K_M.gguf", prompt: "Once upon a time", max_tokens: 3, temperature: 0, logprobs: 5 });
    const choice = answer.choices[0]!;
    expect(choice.text).toBe("opolopolopol");
    const logprobs = choice.logprobs!;
    expect(logprobs.tokens).toEqual(["opol", "opol", "opol"]);
    expect(logprobs.text_offset).toEqual([0, 4, 8]);
    // llama-server -m this model, /v1/completions with logprobs 5, temperature 0 (same llama.cpp source). Equal to
    // 2e-3 where both ran the same CPU kernels; on an AVX-512/AMX machine, where node-llama-cpp loads its
    // sapphirerapids CPU variant and the reference tools are built without AMX, they differ by up to 0.0065
    // (llama-server there: -8.74421, -8.621085, -8.632084; lmrun: -8.741227, -8.620885, -8.638611).
    const llamaServer = [-8.74421, -8.618004, -8.626638];
    logprobs.token_logprobs!.forEach((value, index) => expect(Math.abs(value - llamaServer[index]!)).toBeLessThan(1.5e-2));
    const top = logprobs.top_logprobs![0]!;
    expect(Object.keys(top)).toEqual(["opol", "controller", " Alfred", " британ", " resp"]);
    expect(Math.abs(top[" Alfred"]! - -8.84169)).toBeLessThan(1.5e-2);
    // llama-server's chat form rides along, with the ids and bytes.
    const content = (logprobs as unknown as { content: Array<ChatLogprob & { id: number }> }).content;
    expect(content[0]!.top_logprobs.map((t) => (t as unknown as { id: number }).id)).toEqual([13242, 8299, 12299, 25926, 4613]);
    expect(content[0]!.top_logprobs[3]!).toMatchObject({ token: " британ", bytes: [32, 208, 177, 209, 128, 208, 184, 209, 130, 208, 176, 208, 189] });
  });

  it("chat: each token of the answer, most likely alternatives first; streamed, each chunk's own tokens, the same values", async () => {
    const params = { model: "tiny", messages: [{ role: "user" as const, content: "Tell me a story" }], max_tokens: 24, temperature: 0, logprobs: true, top_logprobs: 3 };
    const whole = await openai.chat.completions.create(params);
    const content = whole.choices[0]!.message.content!;
    const tokens = whole.choices[0]!.logprobs!.content! as ChatLogprob[];
    expect(content.length).toBeGreaterThan(10);
    expect(joined(tokens)).toBe(content);
    for (const token of tokens) {
      expect(token.top_logprobs.length).toBe(3);
      // Greedy: the token taken is the most likely one.
      expect(token.top_logprobs[0]!.token).toBe(token.token);
      expect(token.top_logprobs[0]!.logprob).toBe(token.logprob);
      expect(token.logprob).toBeLessThanOrEqual(0);
      expect(token.top_logprobs[1]!.logprob).toBeLessThanOrEqual(token.top_logprobs[0]!.logprob);
      expect(token.bytes).toEqual([...Buffer.from(token.token)]);
    }
    // Not every token is certain (the test would pass on a constant otherwise).
    expect(tokens.some((t) => t.logprob < -0.01)).toBe(true);

    const stream = await openai.chat.completions.create({ ...params, stream: true });
    let text = "";
    const streamed: ChatLogprob[] = [];
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      const piece = choice.delta.content ?? "";
      const pieceTokens = (choice.logprobs?.content ?? []) as ChatLogprob[];
      if (piece !== "") expect(joined(pieceTokens)).toBe(piece);
      text += piece;
      streamed.push(...pieceTokens);
    }
    expect(text).toBe(content);
    expect(streamed.map((t) => [t.token, t.logprob])).toEqual(tokens.map((t) => [t.token, t.logprob]));
  });

  it("none unless asked; a stop text's tokens are not the answer's; bad values are the API's 400s", async () => {
    const plain = await openai.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 });
    expect(plain.choices[0]!.logprobs).toBeNull();

    // "day" ends it inside the token " day": the space shown has no token of its own, as in llama-server.
    const stopped = await openai.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 40, temperature: 0, logprobs: 0, stop: ["day"] });
    const text = stopped.choices[0]!.text;
    const tokens = stopped.choices[0]!.logprobs!.tokens!;
    expect(stopped.choices[0]!.finish_reason).toBe("stop");
    expect(text.endsWith("One ")).toBe(true);
    expect(tokens.join("")).toBe(text.slice(0, -1));
    expect(stopped.choices[0]!.logprobs!.top_logprobs!.every((alternatives) => Object.keys(alternatives!).length === 0)).toBe(true);

    const tooMany = await request(`${server.url}/v1/chat/completions`, { method: "POST", json: { model: "tiny", messages: [{ role: "user", content: "Hi" }], logprobs: true, top_logprobs: 21 } });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.param).toBe("top_logprobs");
    const alone = await request(`${server.url}/v1/chat/completions`, { method: "POST", json: { model: "tiny", messages: [{ role: "user", content: "Hi" }], top_logprobs: 2 } });
    expect(alone.status).toBe(400);
    expect(alone.body.error.message).toContain('"logprobs": true');
    const wrongType = await request(`${server.url}/v1/completions`, { method: "POST", json: { model: "tiny", prompt: "Hi", logprobs: true } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.param).toBe("logprobs");
  });

  it("ollama: a thinking model's thoughts have no logprobs, its answer has; each streamed line carries its own", async () => {
    const answer = await ollama.chat({ model: "qwen3-thinking-oracle.gguf", messages: [{ role: "user", content: "hi" }], stream: false, logprobs: true, top_logprobs: 2, options: { temperature: 0 } });
    expect(answer.message.thinking).toBe(THINKING_ORACLE.thoughts);
    expect(answer.message.content).toBe(THINKING_ORACLE.answer);
    expect(joined(answer.logprobs!)).toBe(THINKING_ORACLE.answer);
    // The oracle's answer token is certain; the alternative next to it has no chance at all.
    expect(answer.logprobs![0]).toMatchObject({ token: "Ok", logprob: 0 });
    expect(answer.logprobs![0]!.top_logprobs!.length).toBe(2);

    let text = "";
    for await (const part of await ollama.generate({ model: "tiny", prompt: "Once upon a time", stream: true, logprobs: true, options: { temperature: 0, num_predict: 16 } })) {
      if (part.done) continue;
      expect(joined(part.logprobs ?? [])).toBe(part.response);
      text += part.response;
    }
    expect(text.length).toBeGreaterThan(10);
    // ollama reads top_logprobs without logprobs as nothing asked.
    const ignored = await ollama.generate({ model: "tiny", prompt: "Hi", stream: false, top_logprobs: 3, options: { num_predict: 2 } });
    expect(ignored.logprobs).toBeUndefined();
  });

  it("Responses API: in the output text when `include` asks for them, in its streamed deltas too", async () => {
    const params = { model: "tiny", input: "Tell me a story", max_output_tokens: 12, temperature: 0, include: ["message.output_text.logprobs" as const], top_logprobs: 1 };
    const response = await openai.responses.create(params);
    const part = response.output.find((item) => item.type === "message")!.content[0] as OpenAI.Responses.ResponseOutputText;
    expect(joined(part.logprobs!)).toBe(part.text);
    expect(part.logprobs![0]!.top_logprobs.length).toBe(1);

    const stream = openai.responses.stream(params);
    const deltas: string[] = [];
    stream.on("response.output_text.delta", (event) => {
      expect(joined(event.logprobs)).toBe(event.delta);
      deltas.push(event.delta);
    });
    const final = await stream.finalResponse();
    expect(deltas.join("")).toBe(part.text);
    const streamedPart = final.output.find((item) => item.type === "message")!.content[0] as OpenAI.Responses.ResponseOutputText;
    expect(streamedPart.logprobs!.map((t) => t.logprob)).toEqual(part.logprobs!.map((t) => t.logprob));

    const without = await openai.responses.create({ ...params, include: [] });
    expect((without.output.find((item) => item.type === "message")!.content[0] as OpenAI.Responses.ResponseOutputText).logprobs).toEqual([]);
  });
});
