import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCli } from "../helpers/cli.js";
import { THINKING_ORACLE, writeThinkingOracle } from "../helpers/thinkingModel.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * A thinking model's thoughts come apart from its answer: ollama's `thinking`, OpenAI's
 * `reasoning_content` (llama-server's and DeepSeek's field), `run`'s stderr; `think: false` and its
 * OpenAI-side spellings turn thinking off. The model is a real GGUF run by llama.cpp whose greedy
 * answer is known (helpers/thinkingModel.ts): thoughts "hm", answer "Ok".
 */

const { thoughts, answer, generatedTokens } = THINKING_ORACLE;
let dir: string;
let modelPath: string;
let server: ServeProcess;
let openai: OpenAI;
let ollama: Ollama;
const messages = [{ role: "user" as const, content: "Hi" }];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-thinking-"));
  modelPath = writeThinkingOracle(path.join(dir, "qwen3-thinking-oracle.gguf"));
  // Contexts of 1024: node-llama-cpp's function-calling instructions alone take ~570 tokens.
  writeThinkingOracle(path.join(dir, "qwen3-answers-at-once.gguf"), { thinks: false });
  writeThinkingOracle(path.join(dir, "qwen3-tags-as-text.gguf"), { tagsAsText: true });
  server = await startServe([modelPath, path.join(dir, "qwen3-answers-at-once.gguf"), path.join(dir, "qwen3-tags-as-text.gguf"), "-c", "1024", "--parallel", "1", "--keep-alive", "-1"]);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  ollama = new Ollama({ host: server.url });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  fs.rmSync(dir, { recursive: true, force: true });
});

const model = "qwen3-thinking-oracle.gguf";

describe("a thinking model's thoughts", () => {
  it("ollama /api/chat and /api/generate: `thinking` apart from the content, every generated token counted; think: false has none", async () => {
    const whole = await ollama.chat({ model, messages, stream: false, options: { temperature: 0 } });
    expect(whole.message.content).toBe(answer);
    expect(whole.message.thinking).toBe(thoughts);
    expect(whole.eval_count).toBe(generatedTokens);

    const pieces = [];
    for await (const part of await ollama.chat({ model, messages, stream: true, think: true, options: { temperature: 0 } })) pieces.push(part);
    const thinkingAt = pieces.findIndex((p) => p.message.thinking);
    const contentAt = pieces.findIndex((p) => p.message.content !== "");
    expect(pieces.map((p) => p.message.thinking ?? "").join("")).toBe(thoughts);
    expect(pieces.map((p) => p.message.content).join("")).toBe(answer);
    expect(thinkingAt).toBeGreaterThanOrEqual(0);
    expect(thinkingAt).toBeLessThan(contentAt);

    const off = await ollama.chat({ model, messages, stream: false, think: false, options: { temperature: 0 } });
    expect(off.message.content).toBe(answer);
    expect(off.message.thinking).toBeUndefined();
    // Off as Qwen3's template turns it off (enable_thinking=false): an empty thought block in the prompt
    // ("<think>", "\n\n", "</think>", "\n\n", each after this vocabulary's word-start space), then
    // "Ok" and the end token, as llama-server counts them (2 tokens generated).
    expect(off.prompt_eval_count - whole.prompt_eval_count).toBe(6);
    expect(off.eval_count).toBe(2);

    const generated = await ollama.generate({ model, prompt: "Hi", stream: false, options: { temperature: 0 } });
    expect([generated.response, generated.thinking]).toEqual([answer, thoughts]);

    const badThink = await request(`${server.url}/api/chat`, { json: { model, messages, think: "very" } });
    expect(badThink.status).toBe(400);
    expect(badThink.body.error).toMatch(/"think"/);
    // Thinking asked of a model that cannot think: ollama's 400 (false is fine).
    for (const [endpoint, body] of [["chat", { messages }], ["generate", { prompt: "Hi" }]] as const) {
      for (const think of [true, "high"]) {
        const refused = await request(`${server.url}/api/${endpoint}`, { json: { model: "tiny", ...body, think, stream: false } });
        expect([refused.status, refused.body.error]).toEqual([400, '"tiny" does not support thinking']);
      }
    }
    const plain = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "Once", think: false, stream: false, options: { num_predict: 2 } } });
    expect([plain.status, plain.body.eval_count]).toEqual([200, 2]);
  });

  it("OpenAI chat: `reasoning_content` (and ollama's `reasoning`) beside the content, streamed first; enable_thinking false or a reasoning effort of none turn it off", async () => {
    const whole = await openai.chat.completions.create({ model, messages, temperature: 0 });
    const message = whole.choices[0]!.message as { content: string | null; reasoning_content?: string };
    expect([message.content, message.reasoning_content]).toEqual([answer, thoughts]);
    expect(whole.usage!.completion_tokens).toBe(generatedTokens);
    // The thoughts' tokens, as node-llama-cpp's segment reports them (the <think> marker is not among them).
    const reasoningTokens = whole.usage!.completion_tokens_details?.reasoning_tokens ?? 0;
    expect(reasoningTokens).toBeGreaterThan(0);
    expect(reasoningTokens).toBeLessThan(generatedTokens - 2);

    const chunks = [];
    for await (const chunk of await openai.chat.completions.create({ model, messages, temperature: 0, stream: true })) chunks.push(chunk);
    const deltas = chunks.map((c) => (c.choices[0]?.delta ?? {}) as { content?: string | null; reasoning_content?: string });
    expect(deltas.map((d) => d.reasoning_content ?? "").join("")).toBe(thoughts);
    expect(deltas.map((d) => d.content ?? "").join("")).toBe(answer);
    expect(deltas.findIndex((d) => d.reasoning_content)).toBeLessThan(deltas.findIndex((d) => d.content));
    // ollama's and OpenRouter's name for the same text.
    expect((message as { reasoning?: string }).reasoning).toBe(thoughts);
    expect(deltas.map((d) => (d as { reasoning?: string }).reasoning ?? "").join("")).toBe(thoughts);

    const off = await openai.chat.completions.create({ model, messages, temperature: 0, chat_template_kwargs: { enable_thinking: false } } as never);
    expect((off as OpenAI.ChatCompletion).choices[0]!.message).not.toHaveProperty("reasoning_content");
    const none = await openai.chat.completions.create({ model, messages, temperature: 0, reasoning_effort: "none" as never });
    expect(none.choices[0]!.message).not.toHaveProperty("reasoning_content");
    expect(none.choices[0]!.message.content).toBe(answer);
    const ollamaStyle = await openai.chat.completions.create({ model, messages, temperature: 0, reasoning: { effort: "none" } } as never);
    expect((ollamaStyle as OpenAI.ChatCompletion).choices[0]!.message).not.toHaveProperty("reasoning");
    const openRouterStyle = await openai.chat.completions.create({ model, messages, temperature: 0, reasoning: { enabled: false } } as never);
    expect((openRouterStyle as OpenAI.ChatCompletion).choices[0]!.message).not.toHaveProperty("reasoning_content");
    const badEffort = await openai.chat.completions.create({ model, messages, reasoning_effort: "lots" as never }).catch((e) => e);
    expect(badEffort).toBeInstanceOf(OpenAI.BadRequestError);
    expect(badEffort.param).toBe("reasoning_effort");
  });

  it("under a grammar (a JSON schema, a forced tool call, ollama's format) the model thinks first, unconstrained, then answers as constrained", async () => {
    const schema = { type: "object", properties: { a: { type: "string", enum: ["x", "y"] } } };
    const json = await openai.chat.completions.create({ model, messages, temperature: 0, max_tokens: 40, response_format: { type: "json_schema", json_schema: { name: "s", schema } } });
    const message = json.choices[0]!.message as { content: string; reasoning_content?: string };
    expect(message.reasoning_content).toBe(thoughts);
    expect(["x", "y"]).toContain(JSON.parse(message.content).a);
    expect(json.choices[0]!.finish_reason).toBe("stop");

    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object", properties: { zone: { type: "string", enum: ["UTC"] } } } } }];
    const forced = await openai.chat.completions.create({ model, messages, temperature: 0, max_tokens: 60, tools, tool_choice: { type: "function", function: { name: "f" } } });
    const call = forced.choices[0]!.message.tool_calls![0]!;
    expect((forced.choices[0]!.message as { reasoning_content?: string }).reasoning_content).toBe(thoughts);
    expect(call.type === "function" && JSON.parse(call.function.arguments)).toEqual({ zone: "UTC" });

    // The thoughts and the constrained answer share max_tokens: thoughts that end at the limit leave no answer.
    for (const maxTokens of [4, 5, 6]) {
      const tight = await openai.chat.completions.create({ model, messages, temperature: 0, max_tokens: maxTokens, response_format: { type: "json_object" } });
      expect(tight.usage!.completion_tokens).toBeLessThanOrEqual(maxTokens);
      expect(tight.choices[0]!.finish_reason).toBe("length");
    }

    // A model of the same wrapper that answers at once: its first text is dropped and the grammar starts
    // over, giving what it gives with thinking off (where nothing is dropped).
    const atOnceRequest = { model: "qwen3-answers-at-once.gguf", messages, temperature: 0, max_tokens: 10, response_format: { type: "json_object" as const } };
    const atOnce = await openai.chat.completions.create(atOnceRequest);
    const direct = await openai.chat.completions.create({ ...atOnceRequest, reasoning_effort: "none" as never });
    expect(atOnce.choices[0]!.message).not.toHaveProperty("reasoning_content");
    expect(atOnce.choices[0]!.message.content!.startsWith("{")).toBe(true);
    expect([atOnce.choices[0]!.message.content, atOnce.usage!.completion_tokens, atOnce.choices[0]!.finish_reason]).toEqual([
      direct.choices[0]!.message.content,
      direct.usage!.completion_tokens,
      direct.choices[0]!.finish_reason,
    ]);

    const format = await ollama.chat({ model, messages, stream: false, format: schema, options: { temperature: 0, num_predict: 40 } });
    expect(format.message.thinking).toBe(thoughts);
    expect(["x", "y"]).toContain(JSON.parse(format.message.content).a);
  });

  it("thoughts sent back with an assistant turn go into the prompt (as the template shows them), in both APIs", async () => {
    // Qwen3's template shows the thoughts of assistant turns after the last user message (a tool loop).
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object", properties: {} } } }];
    const loop = (assistant: object) => [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }], ...assistant },
      { role: "tool", tool_call_id: "c1", content: "done" },
    ];
    const plain = await openai.chat.completions.create({ model, messages: loop({}) as never, tools, max_tokens: 1, temperature: 0 });
    const withThoughts = await openai.chat.completions.create({ model, messages: loop({ reasoning_content: "I should call f." }) as never, tools, max_tokens: 1, temperature: 0 });
    expect(withThoughts.usage!.prompt_tokens).toBeGreaterThan(plain.usage!.prompt_tokens);
    const ollamaLoop = (assistant: object) => [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: {} } }], ...assistant },
      { role: "tool", content: "done", tool_name: "f" },
    ];
    const ollamaPlain = await request(`${server.url}/api/chat`, { json: { model, messages: ollamaLoop({}), tools, stream: false, options: { num_predict: 1 } } });
    const ollamaThoughts = await request(`${server.url}/api/chat`, { json: { model, messages: ollamaLoop({ thinking: "I should call f." }), tools, stream: false, options: { num_predict: 1 } } });
    expect(ollamaThoughts.body.prompt_eval_count).toBeGreaterThan(ollamaPlain.body.prompt_eval_count);
  });

  it("a tool result goes into the prompt as the client wrote it (Qwen's template shows it as is; node-llama-cpp's wrapper JSON-encoded it), as llama-server renders it", async () => {
    const tools = [{ type: "function" as const, function: { name: "weather", description: "Weather now", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const promptTokens = async (content: string) => {
      const messages = [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } }] },
        { role: "tool", tool_call_id: "c1", content },
      ];
      return (await openai.chat.completions.create({ model, messages: messages as never, tools, max_tokens: 1, temperature: 0 })).usage!.prompt_tokens;
    };
    // llama-server --jinja on this model: 745, 730 and 718 prompt tokens (its one more BOS aside, the same
    // differences); JSON-encoded, the JSON result's quotes and escapes would add more than the others'.
    const [json, text, number] = [await promptTokens('{"temperature":20,"unit":"C"}'), await promptTokens("sunny and warm"), await promptTokens("42")];
    expect([json - number, text - number]).toEqual([745 - 718, 730 - 718]);
  });

  it("a prompt formatted by hand (special tokens written as text) is read as llama-server reads it, on /v1/completions and ollama's raw mode", async () => {
    const formatted = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
    const completion = await openai.completions.create({ model, prompt: formatted, temperature: 0, max_tokens: 40 });
    // llama-server (same llama.cpp, this model): "Ok", prompt_tokens 31 (the BOS and 30), completion_tokens 2.
    expect([completion.choices[0]!.text, completion.usage!.prompt_tokens, completion.usage!.completion_tokens]).toEqual([answer, 31, 2]);
    const raw = await ollama.generate({ model, prompt: formatted, raw: true, stream: false, options: { temperature: 0 } });
    expect([raw.response, raw.prompt_eval_count, raw.eval_count]).toEqual([answer, 31, 2]);
  });

  it("ollama's raw mode and a continued `context` split the thoughts out of the plain text by their tags, as ollama's thinking parser does; think: false leaves them", async () => {
    // Qwen3's own GGUFs have the thought tags as user-defined tokens, which a plain completion's text shows.
    const tagged = "qwen3-tags-as-text.gguf";
    const prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    const raw = await ollama.generate({ model: tagged, prompt, raw: true, stream: false, options: { temperature: 0 } });
    expect([raw.thinking, raw.response, raw.eval_count]).toEqual([thoughts, answer, generatedTokens]);
    const kept = await ollama.generate({ model: tagged, prompt, raw: true, stream: false, think: false, options: { temperature: 0 } });
    expect(kept.thinking).toBeUndefined();
    expect(kept.response).toBe(`<think>\n${thoughts}\n</think>\n\n${answer}`);
    // The prompt ending inside the thoughts (as Qwen3's template ends a turn that thinks): the text starts in them.
    const opened = await ollama.generate({ model: tagged, prompt: `${prompt}<think>\n`, raw: true, stream: false, options: { temperature: 0 } });
    expect([opened.thinking, opened.response]).toEqual([thoughts, answer]);
    // Streamed: the thoughts' lines, then the answer's.
    const lines: Array<{ thinking?: string; response: string }> = [];
    for await (const part of await ollama.generate({ model: tagged, prompt, raw: true, stream: true, options: { temperature: 0 } })) if (!part.done) lines.push(part);
    expect(lines.map((line) => line.thinking ?? "").join("")).toBe(thoughts);
    expect(lines.map((line) => line.response).join("")).toBe(answer);
    // A turn continued from the first exchange's context is a plain completion too.
    const first = await ollama.generate({ model: tagged, prompt: "Hi", stream: false, options: { temperature: 0 } });
    const next = await ollama.generate({ model: tagged, prompt: "Hi", context: first.context, stream: false, options: { temperature: 0 } });
    expect([next.thinking, next.response]).toEqual([thoughts, answer]);
    // OpenAI's completions leave the text as it is, as llama-server's do.
    const completion = await openai.completions.create({ model: tagged, prompt, temperature: 0, max_tokens: 40 });
    expect(completion.choices[0]!.text).toBe(`<think>\n${thoughts}\n</think>\n\n${answer}`);
  });

  it("/api/show and lmrun show list the thinking capability", async () => {
    const shown = await ollama.show({ model });
    expect(shown.capabilities).toEqual(["completion", "tools", "thinking"]);
    const local = await runCli(["show", modelPath, "--json"], { home: server.home });
    expect(JSON.parse(local.stdout).capabilities).toEqual(["completion", "tools", "thinking"]);
  });

  it("lmrun run and batch: the answer alone on stdout, the thoughts on stderr (or in --json and batch lines), none with --no-think; the same through the server", async () => {
    for (const where of [["--local"], []]) {
      const run = await runCli(["run", where.length > 0 ? modelPath : model, "Hi", "--temp", "0", ...where], { home: server.home });
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(answer);
      expect(run.stderr).toContain(`Thinking...\n${thoughts}\n...done thinking.`);

      const hidden = await runCli(["run", where.length > 0 ? modelPath : model, "Hi", "--temp", "0", "--hide-thinking", ...where], { home: server.home });
      expect(hidden.stdout).toBe(answer);
      expect(hidden.stderr).not.toContain("Thinking");

      const json = await runCli(["run", where.length > 0 ? modelPath : model, "Hi", "--temp", "0", "--json", ...where], { home: server.home });
      expect(JSON.parse(json.stdout)).toMatchObject({ text: answer, thinking: thoughts, generatedTokens });

      // Thoughts that use up -n leave no answer: an error, not an empty success.
      const cut = await runCli(["run", where.length > 0 ? modelPath : model, "Hi", "--temp", "0", "-n", "3", ...where], { home: server.home });
      expect(cut.code).toBe(1);
      expect(cut.stdout).toBe("");
      expect(cut.stderr).toContain("the model's thoughts used all of --max-tokens 3 before its answer began");
      // A thought cut after its newline gets no blank line before the closing line.
      expect(cut.stderr).toContain(`Thinking...\n${thoughts}\n...done thinking.`);

      const off = await runCli(["run", where.length > 0 ? modelPath : model, "Hi", "--temp", "0", "--no-think", "--json", ...where], { home: server.home });
      const result = JSON.parse(off.stdout);
      expect(result.text).toBe(answer);
      expect(result).not.toHaveProperty("thinking");

      const batch = await runCli(["batch", where.length > 0 ? modelPath : model, "-", "--temp", "0", ...where], {
        home: server.home,
        input: '{"id":1,"prompt":"Hi"}\n{"id":2,"messages":[{"role":"user","content":"Hi"}]}\n',
      });
      expect(batch.code).toBe(0);
      expect(batch.stdout.trim().split("\n").map((line) => JSON.parse(line))).toMatchObject([
        { id: 1, text: answer, thinking: thoughts, generatedTokens },
        { id: 2, text: answer, thinking: thoughts, generatedTokens },
      ]);
      // --no-think for every request, and a request's own "think" over it.
      const noThink = await runCli(["batch", where.length > 0 ? modelPath : model, "-", "--temp", "0", "--no-think", ...where], {
        home: server.home,
        input: '{"id":1,"prompt":"Hi"}\n{"id":2,"prompt":"Hi","think":true}\n',
      });
      const lines = noThink.stdout.trim().split("\n").map((line) => JSON.parse(line));
      expect(lines[0]).not.toHaveProperty("thinking");
      expect(lines[1]).toMatchObject({ text: answer, thinking: thoughts });
      // A line's "think": true on a model that cannot think means "as the model does", here and through the
      // server (whose ollama API would refuse it: lmrun's client sends only "off").
      const onTiny = await runCli(["batch", "tiny", "-", "-n", "2", ...where], { home: server.home, input: '{"id":1,"prompt":"Once","think":true}\n' });
      expect([onTiny.code, JSON.parse(onTiny.stdout).generatedTokens]).toEqual([0, 2]);
    }
  });
});
