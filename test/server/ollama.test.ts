import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCli } from "../helpers/cli.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/** ollama's API of a real `lmrun serve`, through the real `ollama` npm client (ollama-js). */

let server: ServeProcess;
let ollama: Ollama;

beforeAll(async () => {
  server = await startServe(["--parallel", "2", "--keep-alive", "-1"]);
  ollama = new Ollama({ host: server.url });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

describe("lmrun serve: ollama API (ollama npm client)", () => {
  it("generate loads a model on first request; the answer equals `lmrun run --local`; durations are measured ns; the lmrun extension is on the final object", async () => {
    const answer = await ollama.generate({ model: "tiny", prompt: "Lily and Tom", options: { temperature: 0, seed: 5, num_predict: 32 } });
    const local = await runCli(["run", "tiny", "Lily and Tom", "--local", "--temp", "0", "--seed", "5", "-n", "32", "--json"], { home: server.home });
    expect(local.code).toBe(0);
    const expected = JSON.parse(local.stdout);
    expect(answer.response).toBe(expected.text);
    expect(answer.done).toBe(true);
    expect(answer.done_reason).toBe("length");
    expect(answer.eval_count).toBe(32);
    expect(answer.prompt_eval_count).toBe(expected.promptTokens);
    expect(answer.load_duration).toBeGreaterThan(0);
    expect(answer.eval_duration).toBeGreaterThan(0);
    expect(answer.total_duration).toBeGreaterThanOrEqual(answer.eval_duration + answer.prompt_eval_duration);
    const extension = (answer as unknown as { lmrun: Record<string, any> }).lmrun;
    expect(extension).toMatchObject({
      stopReason: "maxTokens",
      promptTokens: expected.promptTokens,
      generatedTokens: 32,
      chatTemplate: false,
      seed: 5,
      sampling: expected.sampling,
      model: { fileName: "stories260K-Q8_0.gguf", name: "tiny" },
    });
    expect(extension.load).toMatchObject({ contextSize: expected.load.contextSize, parallel: 2 });
  });

  it("streams NDJSON whose pieces join to the non-streamed answer", async () => {
    const whole = await ollama.generate({ model: "tiny", prompt: "The sun", options: { temperature: 0, seed: 1, num_predict: 20 } });
    const stream = await ollama.generate({ model: "tiny", prompt: "The sun", stream: true, options: { temperature: 0, seed: 1, num_predict: 20 } });
    let text = "";
    let final: any;
    for await (const part of stream) {
      text += part.response;
      if (part.done) final = part;
    }
    expect(text).toBe(whole.response);
    expect(final.eval_count).toBe(20);
    expect(final.load_duration).toBe(0);
    // The same prompt again: its slot still holds it.
    expect(final.lmrun.cachedPromptTokens).toBeGreaterThan(0);
  });

  it("chat (stream and not), with stop texts", async () => {
    const messages = [{ role: "user", content: "Tell me a story." }];
    const whole = await ollama.chat({ model: "tiny", messages, options: { temperature: 0, seed: 2, num_predict: 30 } });
    expect(whole.message.role).toBe("assistant");
    expect(whole.message.content.length).toBeGreaterThan(0);
    let streamed = "";
    for await (const part of await ollama.chat({ model: "tiny", messages, stream: true, options: { temperature: 0, seed: 2, num_predict: 30 } })) streamed += part.message.content;
    expect(streamed).toBe(whole.message.content);
    const word = whole.message.content.trim().split(/\s+/)[2]!;
    const stopped = await ollama.chat({ model: "tiny", messages, options: { temperature: 0, seed: 2, num_predict: 30, stop: [word] } });
    expect(stopped.message.content).not.toContain(word);
    expect(whole.message.content.startsWith(stopped.message.content)).toBe(true);
    expect(stopped.done_reason).toBe("stop");
  });

  it("format with a JSON schema gives JSON that follows it", async () => {
    const format = { type: "object", properties: { size: { enum: ["small", "big"] } }, required: ["size"], additionalProperties: false };
    const answer = await ollama.generate({ model: "tiny", prompt: "A dog:", format, options: { temperature: 0, num_predict: 40 } });
    expect(answer.done_reason).toBe("stop");
    expect(["small", "big"]).toContain(JSON.parse(answer.response).size);
  });

  it("tags, ps, show, embed, version", async () => {
    const tags = await ollama.list();
    expect(tags.models.map((m) => m.name)).toContain("tiny");
    const ps = await ollama.ps();
    expect(ps.models.map((m) => m.name)).toEqual(["tiny"]);
    expect(ps.models[0]!.context_length).toBeGreaterThan(0);
    const show = await ollama.show({ model: "tiny" });
    expect(show.details.format).toBe("gguf");
    const embedded = await ollama.embed({ model: "tiny", input: ["a", "b"] });
    expect(embedded.embeddings).toHaveLength(2);
    expect(embedded.embeddings[0]!.length).toBeGreaterThan(8);
    const version = await ollama.version();
    expect(version.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("keep_alive 0 with no prompt unloads; the next request loads it again", async () => {
    const unloaded = await request(`${server.url}/api/generate`, { json: { model: "tiny", keep_alive: 0 } });
    expect(unloaded.body).toMatchObject({ done: true, done_reason: "unload" });
    expect((await ollama.ps()).models).toEqual([]);
    const again = await ollama.generate({ model: "tiny", prompt: "Hi", options: { num_predict: 2 } });
    expect(again.load_duration).toBeGreaterThan(0);
    expect((await ollama.ps()).models.map((m) => m.name)).toEqual(["tiny"]);
  });

  it("errors surface as ollama-js ResponseErrors; model-writing endpoints are refused", async () => {
    const missing = await ollama.generate({ model: "nope", prompt: "x" }).catch((e) => e);
    expect(missing.name).toBe("ResponseError");
    expect(missing.status_code).toBe(404);
    const pull = await ollama.pull({ model: "tiny" }).catch((e) => e);
    expect(pull.status_code).toBe(403);
    const del = await ollama.delete({ model: "tiny" }).catch((e) => e);
    expect(del.status_code).toBe(403);
    const create = await request(`${server.url}/api/create`, { json: { model: "x", from: "tiny" } });
    expect(create.status).toBe(403);
    const badOption = await ollama.generate({ model: "tiny", prompt: "x", options: { temperature: -1 } }).catch((e) => e);
    expect(badOption.status_code).toBe(400);
    expect(badOption.error).toMatch(/options\.temperature/);
  });
});
