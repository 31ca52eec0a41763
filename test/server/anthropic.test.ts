import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { THINKING_ORACLE } from "../helpers/thinkingModel.js";
import { request, serveThinkingOracle, type ServeProcess } from "./helpers.js";

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) through the real
 * `@anthropic-ai/sdk` (its `messages.stream` assembles and checks the events), on a real GGUF whose greedy
 * answer is known (helpers/thinkingModel.ts: thoughts "hm", answer "Ok", Qwen3's template) and on `tiny`.
 * What it shares with /v1/chat/completions is compared with it: same prompt, same answer, same counts.
 */

const { thoughts, answer, generatedTokens } = THINKING_ORACLE;
const model = "qwen3-thinking-oracle.gguf";
let server: ServeProcess;
let anthropic: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  server = await serveThinkingOracle(model, ["tiny"]);
  anthropic = new Anthropic({ baseURL: server.url, apiKey: "unused", maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

const weather = { name: "weather", description: "The weather in a city", input_schema: { type: "object" as const, properties: { city: { type: "string" } }, required: ["city"] } };
const weatherForChat = { type: "function" as const, function: { name: "weather", description: weather.description, parameters: weather.input_schema } };

/** Anthropic counts cached prompt tokens apart; together they are the prompt. */
const promptOf = (usage: Anthropic.Usage) => usage.input_tokens + (usage.cache_read_input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0);

describe("lmrun serve: Anthropic's Messages API (@anthropic-ai/sdk)", () => {
  it("a whole message: a thinking block, then the text; end_turn; the same counts as /v1/chat/completions", async () => {
    const message = await anthropic.messages.create({ model, max_tokens: 64, messages: [{ role: "user", content: "Hi" }], temperature: 0 });
    const chat = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], temperature: 0 });
    expect(message.type).toBe("message");
    expect(message.role).toBe("assistant");
    expect(message.model).toBe(model);
    expect(message.content).toEqual([
      { type: "thinking", thinking: thoughts, signature: "" },
      { type: "text", text: answer },
    ]);
    expect([message.stop_reason, message.stop_sequence]).toEqual(["end_turn", null]);
    expect(promptOf(message.usage)).toBe(chat.usage!.prompt_tokens);
    expect(message.usage.output_tokens).toBe(generatedTokens);
    // system (a string or text blocks) is the system message.
    const withSystem = await anthropic.messages.create({ model, max_tokens: 1, system: [{ type: "text", text: "Be brief." }], messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }], temperature: 0 });
    const chatWithSystem = await openai.chat.completions.create({ model, max_tokens: 1, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }], temperature: 0 });
    expect(promptOf(withSystem.usage)).toBe(chatWithSystem.usage!.prompt_tokens);
    // Claude Code also sends system text as a message between the turns, and output_config.effort.
    const reminded = await anthropic.messages.create({ model, max_tokens: 1, output_config: { effort: "high" }, thinking: { type: "adaptive" }, messages: [{ role: "user", content: "Hi" }, { role: "system", content: [{ type: "text", text: "Reminder: be brief." }] }] as never, temperature: 0 } as never);
    const remindedChat = await openai.chat.completions.create({ model, max_tokens: 1, messages: [{ role: "user", content: "Hi" }, { role: "system", content: "Reminder: be brief." }], temperature: 0 });
    expect(promptOf(reminded.usage)).toBe(remindedChat.usage!.prompt_tokens);
    // thinking disabled: no thinking block (Qwen3's own switch, as think: false).
    const noThinking = await anthropic.messages.create({ model, max_tokens: 64, thinking: { type: "disabled" }, messages: [{ role: "user", content: "Hi" }], temperature: 0 });
    expect(noThinking.content.map((block) => block.type)).toEqual(["text"]);
  });

  it("streams Anthropic's events, which the SDK assembles into the whole message", async () => {
    const stream = anthropic.messages.stream({ model, max_tokens: 64, messages: [{ role: "user", content: "Hi" }], temperature: 0 });
    const events: string[] = [];
    let text = "";
    let thinking = "";
    for await (const event of stream) {
      events.push(event.type === "content_block_delta" ? `${event.type}:${event.delta.type}` : event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
      if (event.type === "content_block_delta" && event.delta.type === "thinking_delta") thinking += event.delta.thinking;
    }
    const final = await stream.finalMessage();
    expect(final.content).toEqual([
      { type: "thinking", thinking: thoughts, signature: "" },
      { type: "text", text: answer },
    ]);
    expect([text, thinking, final.stop_reason, final.usage.output_tokens]).toEqual([answer, thoughts, "end_turn", generatedTokens]);
    const order = events.filter((event, i) => !(event.startsWith("content_block_delta") && events[i - 1] === event));
    expect(order).toEqual([
      "message_start",
      "content_block_start",
      "content_block_delta:thinking_delta",
      "content_block_stop",
      "content_block_start",
      "content_block_delta:text_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    // message_start already has the prompt's size, as Anthropic's does.
    const raw = await fetch(`${server.url}/v1/messages`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: "user", content: "Hi" }], stream: true }) });
    const first = (await raw.text()).split("\n\n")[0]!.split("\n");
    expect(first[0]).toBe("event: message_start");
    expect(promptOf(JSON.parse(first[1]!.slice("data: ".length)).message.usage)).toBe(final.usage.input_tokens + (final.usage.cache_read_input_tokens ?? 0));
  });

  it("a tool loop (thinking and tool_use blocks, then a tool_result) is the prompt chat completions makes of the same turns; count_tokens says so first", async () => {
    const messages: Anthropic.MessageParam[] = [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: [{ type: "thinking", thinking: "I should call weather.", signature: "" }, { type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Paris" } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: '{"temperature":20}' }] },
    ];
    const counted = await anthropic.messages.countTokens({ model, tools: [weather], messages });
    const message = await anthropic.messages.create({ model, max_tokens: 1, tools: [weather], messages, temperature: 0 });
    const chat = await openai.chat.completions.create({
      model,
      tools: [weatherForChat],
      max_tokens: 1,
      temperature: 0,
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", reasoning_content: "I should call weather.", tool_calls: [{ id: "toolu_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } }] } as never,
        { role: "tool", tool_call_id: "toolu_1", content: '{"temperature":20}' },
      ],
    });
    expect([counted.input_tokens, promptOf(message.usage)]).toEqual([chat.usage!.prompt_tokens, chat.usage!.prompt_tokens]);
    // One of Anthropic's server tools declared beside it is left out (it runs on Anthropic's servers).
    const withServerTool = await anthropic.messages.countTokens({ model, tools: [weather, { type: "web_search_20250305", name: "web_search" }] as never, messages });
    expect(withServerTool.input_tokens).toBe(counted.input_tokens);
  });

  it("tool_choice tool: a tool_use block whose streamed input JSON is the forced call chat completions makes", async () => {
    const body = { model, max_tokens: 20, tools: [weather], tool_choice: { type: "tool" as const, name: "weather" }, messages: [{ role: "user" as const, content: "Weather in Paris?" }], temperature: 0 };
    const chat = await openai.chat.completions.create({ model, max_tokens: 20, tools: [weatherForChat], tool_choice: { type: "function", function: { name: "weather" } }, messages: [{ role: "user", content: "Weather in Paris?" }], temperature: 0 });
    const expected = (chat.choices[0]!.message.tool_calls![0] as { function: { arguments: string } }).function.arguments;
    const stream = anthropic.messages.stream(body);
    let json = "";
    for await (const event of stream) if (event.type === "content_block_delta" && event.delta.type === "input_json_delta") json += event.delta.partial_json;
    const final = await stream.finalMessage();
    expect(json).toBe(expected);
    const call = final.content.find((block) => block.type === "tool_use") as Anthropic.ToolUseBlock;
    expect(call.name).toBe("weather");
    expect(call.id).toMatch(/^toolu_/);
    // 20 tokens cut the call short, as chat completions' finish_reason says.
    expect([final.stop_reason, chat.choices[0]!.finish_reason]).toEqual(["max_tokens", "length"]);
    const whole = await anthropic.messages.create(body);
    expect(whole.content.map((block) => block.type)).toEqual(final.content.map((block) => block.type));
  });

  it("stop_sequences: stop_reason stop_sequence names the one that matched; a max_tokens past the context ends where the context does", async () => {
    const chat = await openai.chat.completions.create({ model: "tiny", max_tokens: 40, messages: [{ role: "user", content: "Once upon a time" }], temperature: 0 });
    const word = chat.choices[0]!.message.content!.trim().split(/\s+/)[2]!;
    const message = await anthropic.messages.create({ model: "tiny", max_tokens: 40, stop_sequences: ["zzz-never", word], messages: [{ role: "user", content: "Once upon a time" }], temperature: 0 });
    expect([message.stop_reason, message.stop_sequence]).toEqual(["stop_sequence", word]);
    const text = (message.content[0] as Anthropic.TextBlock).text;
    expect(chat.choices[0]!.message.content!.startsWith(text)).toBe(true);
    expect(text).not.toContain(word);
    // Claude Code streams with max_tokens 32000 whatever the model (the SDK wants a stream for that much).
    const long = await anthropic.messages.stream({ model: "tiny", max_tokens: 32_000, messages: [{ role: "user", content: "Once upon a time" }], temperature: 0 }).finalMessage();
    expect(["end_turn", "max_tokens"]).toContain(long.stop_reason);
    expect(promptOf(long.usage) + long.usage.output_tokens).toBeLessThanOrEqual(1024);
  });

  it("errors in Anthropic's shape ({type: error, error: {type, message}}), as the SDK's error classes", async () => {
    const cases: Array<[object, RegExp]> = [
      [{ messages: [{ role: "tool", content: "x" }] }, /must be user, assistant or system/],
      [{ messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "AA==" } }] }] }, /text-only/],
      [{ messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_9", content: "x" }] }] }, /answers no tool_use/],
      [{ messages: [] }, /must not be empty/],
    ];
    for (const [body, message] of cases) {
      const error = await anthropic.messages.create({ model, max_tokens: 4, ...body } as never).catch((e) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(Anthropic.BadRequestError);
      expect(error.error).toEqual({ type: "error", error: { type: "invalid_request_error", message: expect.stringMatching(message) } });
    }
    const missing = await anthropic.messages.create({ model: "nope", max_tokens: 4, messages: [{ role: "user", content: "x" }] }).catch((e) => e);
    expect(missing).toBeInstanceOf(Anthropic.NotFoundError);
    expect(missing.error.error.type).toBe("not_found_error");
    const after = await request(`${server.url}/v1/messages`, { json: { model, max_tokens: 64, messages: [{ role: "user", content: "Hi" }], temperature: 0 } });
    expect(after.body.content.at(-1)).toEqual({ type: "text", text: answer });
  });
});
