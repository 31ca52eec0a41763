import { execFile } from "node:child_process";
import { promisify } from "node:util";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCli } from "../helpers/cli.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * The OpenAI API of a real `lmrun serve` (tiny, and a shared model with a chat template), through
 * the real `openai` npm client and raw curl. Greedy answers are compared with `lmrun run --local`.
 * Contexts of 1024 (on both sides): node-llama-cpp's function-calling instructions alone take ~570 tokens.
 */

const chatModel = sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf");
let server: ServeProcess;
let client: OpenAI;

beforeAll(async () => {
  server = await startServe(["tiny", ...(hasShared ? [chatModel] : []), "--parallel", "2", "--keep-alive", "-1", "-c", "1024"]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

describe("lmrun serve: OpenAI API (openai npm client)", () => {
  it("lists the models it serves, and only those", async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toContain("tiny");
    if (hasShared) expect(ids).toContain("stories260K-Q8_0-synthetic-chat-template.gguf");
    const one = await client.models.retrieve("tiny");
    expect(one.id).toBe("tiny");
  });

  it("completions at temp 0 equal `lmrun run --raw --local` byte for byte, with usage", async () => {
    const answer = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 40, temperature: 0, seed: 7 });
    const local = await runCli(["run", "tiny", "Once upon a time", "--raw", "--local", "--temp", "0", "--seed", "7", "-n", "40", "-c", "1024"], { home: server.home });
    expect(local.code).toBe(0);
    expect(answer.choices[0]!.text).toBe(local.stdout);
    expect(answer.choices[0]!.text.length).toBeGreaterThan(20);
    expect(answer.choices[0]!.finish_reason).toBe("length");
    // BOS and "▁Once ▁upon ▁a ▁time": the prompt is tokenised as llama.cpp does (llama-server counts 5 too).
    expect(answer.usage).toMatchObject({ completion_tokens: 40, prompt_tokens: 5, total_tokens: 45 });

    // The prompt and the answer sent back (a chat client re-sending the conversation): the answer is the
    // prompt's exact continuation, so all of it is found in the slot's cache but the last token, which
    // was sampled and never decoded.
    const longer = await client.completions.create({ model: "tiny", prompt: `Once upon a time${answer.choices[0]!.text}`, max_tokens: 4, temperature: 0 });
    expect(longer.usage!.prompt_tokens).toBe(45);
    expect((longer.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details?.cached_tokens).toBe(44);
    // The prompt again: all but its last token come from the cache.
    const again = await client.completions.create({ model: "tiny", prompt: "Once upon a time", max_tokens: 4, temperature: 0 });
    expect((again.usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details?.cached_tokens).toBe(4);
  });

  it("one client going back and forth between two prompts finds each still cached, in its own slot", async () => {
    const cachedOf = (usage: unknown) => (usage as { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details?.cached_tokens ?? 0;
    const first = "Lily and her friend Tom went to the park to play with a big red ball";
    const second = "A small dog named Max lived in a blue house near the river";
    const a = await client.completions.create({ model: "tiny", prompt: first, max_tokens: 2, temperature: 0 });
    await client.completions.create({ model: "tiny", prompt: second, max_tokens: 2, temperature: 0 });
    const again = await client.completions.create({ model: "tiny", prompt: first, max_tokens: 2, temperature: 0 });
    // All but the last prompt token come from the slot's cache (the second prompt went to the other slot).
    expect(cachedOf(again.usage)).toBe(a.usage!.prompt_tokens - 1);
  });

  it("chat, non-streaming and streaming, give the same greedy text; streaming ends with usage and [DONE]", async () => {
    const model = hasShared ? "stories260K-Q8_0-synthetic-chat-template.gguf" : "tiny";
    const messages = [
      { role: "system" as const, content: "You tell short stories." },
      { role: "user" as const, content: [{ type: "text" as const, text: "Tell me about a cat." }] },
    ];
    const whole = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0, seed: 1 });
    expect(whole.object).toBe("chat.completion");
    expect(whole.choices[0]!.message.role).toBe("assistant");
    const text = whole.choices[0]!.message.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);

    const stream = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0, seed: 1, stream: true, stream_options: { include_usage: true } });
    let streamed = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(streamed).toBe(text);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage).toMatchObject({ completion_tokens: whole.usage!.completion_tokens, prompt_tokens: whole.usage!.prompt_tokens });

    // The next turn re-sends the conversation: its slot's cache holds the start, which is not evaluated again.
    const next = await client.chat.completions.create({
      model,
      messages: [...messages, { role: "assistant", content: text }, { role: "user", content: "And then?" }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(next.usage!.prompt_tokens).toBeGreaterThan(whole.usage!.prompt_tokens);
    expect(next.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(Math.floor(whole.usage!.prompt_tokens / 2));
  });

  it("tools: the answer is either text or tool calls naming a given function with JSON arguments; tool results are accepted", async () => {
    const tools = [
      { type: "function" as const, function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
    ];
    const answer = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Weather in Paris?" }], tools, max_tokens: 24, temperature: 0 });
    const choice = answer.choices[0]!;
    expect(["stop", "length", "tool_calls"]).toContain(choice.finish_reason);
    for (const call of choice.message.tool_calls ?? []) {
      expect(call.type === "function" && call.function.name).toBe("get_weather");
      expect(() => JSON.parse(call.type === "function" ? call.function.arguments : "")).not.toThrow();
    }
    const followUp = await client.chat.completions.create({
      model: "tiny",
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
      tools,
      max_tokens: 8,
      temperature: 0,
    });
    expect(followUp.choices[0]!.finish_reason).toMatch(/stop|length|tool_calls/);
    // The tool's answer is in the prompt: without it the prompt is shorter.
    const withoutResult = await client.chat.completions.create({
      model: "tiny",
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      ],
      tools,
      max_tokens: 1,
      temperature: 0,
    });
    expect(followUp.usage!.prompt_tokens).toBeGreaterThan(withoutResult.usage!.prompt_tokens);
    // A tool result that answers no call is refused, not dropped from the prompt unseen.
    const orphan = await client.chat.completions
      .create({ model: "tiny", messages: [{ role: "user", content: "Hi" }, { role: "tool", tool_call_id: "zzz", content: "sunny" }], max_tokens: 1 })
      .catch((e) => e);
    expect(orphan).toBeInstanceOf(OpenAI.BadRequestError);
    expect(orphan.param).toBe("messages[1].tool_call_id");
    // Arguments are an opaque string to OpenAI: a model's malformed call can be replayed.
    const badArguments = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{oops" } }] }, { role: "tool", tool_call_id: "c", content: "ok" }],
      max_tokens: 1,
    });
    expect(badArguments.choices).toHaveLength(1);
  });

  it("tool_choice required or a named function forces a call whose arguments follow the tool's schema (grammar-constrained)", async () => {
    const tools = [
      { type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } } } } },
      { type: "function" as const, function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string", enum: ["UTC", "CET"] } } } } },
    ];
    const messages = [{ role: "user" as const, content: "Weather in Paris?" }];
    // A random-weight model would answer in text if it could choose: it cannot here.
    const named = await client.chat.completions.create({ model: "tiny", messages, tools, tool_choice: { type: "function", function: { name: "get_time" } }, max_tokens: 40, temperature: 0 });
    const choice = named.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]!;
    expect(call.type === "function" && call.function.name).toBe("get_time");
    const args = JSON.parse(call.type === "function" ? call.function.arguments : "");
    expect(Object.keys(args)).toEqual(["zone"]);
    expect(["UTC", "CET"]).toContain(args.zone);
    // Streamed as OpenAI streams a call: no content (the call's JSON is not text); the id and name once, then
    // the arguments in pieces, which make the same arguments.
    const chunks = [];
    for await (const chunk of await client.chat.completions.create({ model: "tiny", messages, tools, tool_choice: { type: "function", function: { name: "get_time" } }, max_tokens: 40, temperature: 0, stream: true })) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("");
    const streamed = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(streamed.length).toBeGreaterThan(1);
    expect(streamed.filter((c) => c.id !== undefined).map((c) => [c.index, c.function?.name])).toEqual([[0, "get_time"]]);
    expect(streamed.every((c) => c.index === 0)).toBe(true);
    expect(JSON.parse(streamed.map((c) => c.function?.arguments ?? "").join(""))).toEqual(args);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
    // The openai package's own stream helper puts the pieces together into the call.
    const runner = client.chat.completions.stream({ model: "tiny", messages, tools, tool_choice: { type: "function", function: { name: "get_time" } }, max_tokens: 40, temperature: 0 });
    const final = await runner.finalChatCompletion();
    const assembled = final.choices[0]!.message.tool_calls![0]!;
    expect(assembled.type === "function" && [assembled.function.name, JSON.parse(assembled.function.arguments)]).toEqual(["get_time", args]);

    const required = await client.chat.completions.create({ model: "tiny", messages, tools, tool_choice: "required", parallel_tool_calls: false, max_tokens: 60, temperature: 0 });
    const one = required.choices[0]!.message.tool_calls!;
    expect(one).toHaveLength(1);
    expect(["get_weather", "get_time"]).toContain(one[0]!.type === "function" && one[0]!.function.name);
    expect(typeof JSON.parse(one[0]!.type === "function" ? one[0]!.function.arguments : "")).toBe("object");
    // required streams as OpenAI streams calls too: the call's id and name once, then its arguments in pieces;
    // the openai package's stream helper assembles the same call as the answer without streaming. (Several
    // calls in one answer: test/unit/toolChoice.test.ts; this random-weight model lists calls until max_tokens.)
    {
      const requiredRequest = { model: "tiny", messages, tools, tool_choice: "required" as const, parallel_tool_calls: false, max_tokens: 60, temperature: 0 };
      const whole = (await client.chat.completions.create(requiredRequest)).choices[0]!.message.tool_calls!;
      const pieces = [];
      for await (const chunk of await client.chat.completions.create({ ...requiredRequest, stream: true })) pieces.push(chunk);
      const deltas = pieces.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
      expect(deltas.filter((d) => d.id !== undefined).map((d) => [d.index, d.function?.name])).toEqual(whole.map((c, i) => [i, c.type === "function" && c.function.name]));
      expect(deltas.filter((d) => d.function?.arguments).length).toBeGreaterThan(whole.length);
      const assembledRequired = (await client.chat.completions.stream(requiredRequest).finalChatCompletion()).choices[0]!.message.tool_calls!;
      expect(assembledRequired.map((c) => c.type === "function" && [c.function.name, JSON.parse(c.function.arguments)])).toEqual(
        whole.map((c) => c.type === "function" && [c.function.name, JSON.parse(c.function.arguments)]),
      );
      expect(pieces.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
    }

    // Cut by max_tokens before the call is whole: the partial call, as OpenAI returns it and as the stream
    // showed it, no text, finish 'length'; for required, the calls named so far, again as the stream showed them.
    const cutRequest = { model: "tiny", messages, tools, tool_choice: { type: "function" as const, function: { name: "get_weather" } }, max_tokens: 3, temperature: 0 };
    const cut = await client.chat.completions.create(cutRequest);
    expect(cut.choices[0]!.finish_reason).toBe("length");
    expect(cut.choices[0]!.message.content ?? "").toBe("");
    const partial = cut.choices[0]!.message.tool_calls![0]!;
    expect(partial.type === "function" && partial.function.name).toBe("get_weather");
    expect(() => JSON.parse(partial.type === "function" ? partial.function.arguments : "")).toThrow();
    const cutStream = [];
    for await (const chunk of await client.chat.completions.create({ ...cutRequest, stream: true })) cutStream.push(chunk);
    const cutPieces = cutStream.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).map((c) => c.function?.arguments ?? "").join("");
    expect(cutPieces).toBe(partial.type === "function" ? partial.function.arguments : "");
    expect(cutStream.at(-1)!.choices[0]!.finish_reason).toBe("length");
    for (const max_tokens of [3, 20, 35]) {
      const cutRequired = { ...cutRequest, tool_choice: "required" as const, parallel_tool_calls: false, max_tokens };
      const whole = (await client.chat.completions.create(cutRequired)).choices[0]!;
      const streamed = [];
      for await (const chunk of await client.chat.completions.create({ ...cutRequired, stream: true })) streamed.push(chunk);
      const calls: Array<[string | undefined, string]> = [];
      for (const d of streamed.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])) {
        calls[d.index] ??= [d.function?.name, ""];
        calls[d.index]![1] += d.function?.arguments ?? "";
      }
      expect(whole.finish_reason).toBe("length");
      expect((whole.message.tool_calls ?? []).map((c) => c.type === "function" && [c.function.name, c.function.arguments])).toEqual(calls);
    }
    // Streamed, the role chunk comes first, before the call is whole.
    const raw = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "tiny", messages, tools, tool_choice: { type: "function", function: { name: "get_time" } }, max_tokens: 40, temperature: 0, stream: true }),
    });
    const events = (await raw.text()).split("\n\n").filter((e) => e.startsWith("data: {"));
    expect(JSON.parse(events[0]!.slice(6)).choices[0].delta).toEqual({ role: "assistant", content: "" });

    // A name that is not among the tools, and "required" without tools: the client's own error, naming the field.
    const unknown = await client.chat.completions.create({ model: "tiny", messages, tools, tool_choice: { type: "function", function: { name: "nope" } } }).catch((e) => e);
    expect(unknown).toBeInstanceOf(OpenAI.BadRequestError);
    expect(unknown.param).toBe("tool_choice.function.name");
    const noTools = await client.chat.completions.create({ model: "tiny", messages, tool_choice: "required" }).catch((e) => e);
    expect(noTools).toBeInstanceOf(OpenAI.BadRequestError);
    expect(noTools.param).toBe("tool_choice");
  });

  it.skipIf(!hasShared)(`chat at temp 0 equals \`lmrun run --local\` with the model's chat template${hasShared ? "" : ` [skipped: ${sharedSkipReason}]`}`, async () => {
    const answer = await client.chat.completions.create({
      model: "stories260K-Q8_0-synthetic-chat-template.gguf",
      messages: [{ role: "user", content: "Lily had a red ball." }],
      max_tokens: 30,
      temperature: 0,
      seed: 3,
    });
    const local = await runCli(["run", chatModel, "Lily had a red ball.", "--local", "--temp", "0", "--seed", "3", "-n", "30", "-c", "1024"], { home: server.home });
    expect(local.code).toBe(0);
    expect(answer.choices[0]!.message.content).toBe(local.stdout);
  });

  it("json_schema answers parse and follow the schema (grammar-constrained)", async () => {
    const schema = {
      type: "object",
      properties: { color: { enum: ["red", "green", "blue"] }, ok: { type: "boolean" } },
      required: ["color", "ok"],
      additionalProperties: false,
    };
    const answer = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Pick a color." }],
      max_tokens: 60,
      temperature: 0,
      response_format: { type: "json_schema", json_schema: { name: "pick", schema } },
    });
    const value = JSON.parse(answer.choices[0]!.message.content ?? "");
    expect(["red", "green", "blue"]).toContain(value.color);
    expect(typeof value.ok).toBe("boolean");
    expect(Object.keys(value).sort()).toEqual(["color", "ok"]);
  });

  it("embeddings: one vector per input, same input same vector", async () => {
    const answer = await client.embeddings.create({ model: "tiny", input: ["a cat", "a dog", "a cat"] });
    expect(answer.data).toHaveLength(3);
    const [a, b, c] = answer.data.map((d) => d.embedding);
    expect(a!.length).toBeGreaterThan(8);
    expect(a).toEqual(c);
    expect(a).not.toEqual(b);
    expect(answer.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it("errors arrive as the client's own error types, in OpenAI's shape", async () => {
    const notFound = await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect(notFound.status).toBe(404);
    const many = await client.chat.completions.create({ model: "tiny", n: 2, messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(many).toBeInstanceOf(OpenAI.BadRequestError);
    expect(many.param).toBe("n");
    expect(many.message).toMatch(/not supported/);
    const image = await client.chat.completions
      .create({ model: "tiny", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }] })
      .catch((e) => e);
    expect(image).toBeInstanceOf(OpenAI.BadRequestError);
    expect(image.message).toMatch(/image parts are not supported/);
    const logprobs = await client.chat.completions.create({ model: "tiny", logprobs: true, top_logprobs: 21, messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(logprobs).toBeInstanceOf(OpenAI.BadRequestError);
    expect(logprobs.param).toBe("top_logprobs");
    const tooLong = await client.completions.create({ model: "tiny", prompt: "x", max_tokens: 100_000 }).catch((e) => e);
    expect(tooLong).toBeInstanceOf(OpenAI.BadRequestError);
    expect(tooLong.param).toBe("max_tokens");
    const raw = await request(`${server.url}/v1/chat/completions`, { json: { model: "tiny", messages: "hi" } });
    expect(raw.status).toBe(400);
    expect(raw.body).toEqual({ error: { message: '"messages" must be an array', type: "invalid_request_error", param: "messages", code: null } });
  });

  it("raw SSE framing (curl -N): data lines, blank-line separated, ending in data: [DONE]", async () => {
    const { stdout } = await promisify(execFile)("curl", [
      "-sN",
      `${server.url}/v1/completions`,
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify({ model: "tiny", prompt: "Once", max_tokens: 5, temperature: 0, stream: true }),
    ]);
    const events = stdout.split("\n\n");
    expect(events.at(-1)).toBe("");
    expect(events.at(-2)).toBe("data: [DONE]");
    const data = events.slice(0, -2).map((e) => {
      expect(e).toMatch(/^data: \{/);
      return JSON.parse(e.slice("data: ".length));
    });
    expect(data.at(-1).choices[0].finish_reason).toBe("length");
    expect(data.every((d) => d.object === "text_completion")).toBe(true);
  });
});
