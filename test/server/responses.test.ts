import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { THINKING_ORACLE } from "../helpers/thinkingModel.js";
import { request, serveThinkingOracle, type ServeProcess } from "./helpers.js";

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

/**
 * OpenAI's Responses API (POST /v1/responses) through the real `openai` package: `responses.create` and
 * the SDK's own stream assembler (`responses.stream`, which checks the events' order), on a real GGUF
 * whose greedy answer is known (helpers/thinkingModel.ts: thoughts "hm", answer "Ok", Qwen3's template).
 * What the API shares with /v1/chat/completions is compared with it: same prompt, same answer, same counts.
 */

const { thoughts, answer, generatedTokens } = THINKING_ORACLE;
const model = "qwen3-thinking-oracle.gguf";
let server: ServeProcess;
let openai: OpenAI;

beforeAll(async () => {
  server = await serveThinkingOracle(model);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

const weather = { type: "function" as const, name: "weather", description: "The weather in a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, strict: false };
const weatherForChat = { type: "function" as const, function: { name: "weather", description: "The weather in a city", parameters: weather.parameters } };

/** The raw SSE events of a streamed request: [event name, data]. */
async function rawEvents(body: object): Promise<Array<[string, any]>> {
  const res = await fetch(`${server.url}/v1/responses`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("event: "))
    .map((block) => {
      const [eventLine, dataLine] = block.split("\n");
      return [eventLine!.slice("event: ".length), JSON.parse(dataLine!.slice("data: ".length))];
    });
}

describe("lmrun serve: OpenAI's Responses API (openai npm client)", () => {
  it("a whole answer: the thoughts as a reasoning item, the text as a message (output_text), the same counts as /v1/chat/completions", async () => {
    const response = await openai.responses.create({ model, input: "Hi", temperature: 0 });
    const chat = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], temperature: 0 });
    expect(response.object).toBe("response");
    expect(response.status).toBe("completed");
    expect(response.output_text).toBe(answer);
    expect(response.output.map((item) => item.type)).toEqual(["reasoning", "message"]);
    const reasoning = response.output[0] as OpenAI.Responses.ResponseReasoningItem;
    expect(reasoning.content).toEqual([{ type: "reasoning_text", text: thoughts }]);
    expect(response.usage).toMatchObject({
      input_tokens: chat.usage!.prompt_tokens,
      output_tokens: generatedTokens,
      output_tokens_details: { reasoning_tokens: chat.usage!.completion_tokens_details!.reasoning_tokens },
      total_tokens: chat.usage!.prompt_tokens + generatedTokens,
    });
    expect(response.model).toBe(model);
    // A string input is a user message; `instructions` a system message before it.
    const instructed = await openai.responses.create({ model, instructions: "Be brief.", input: [{ role: "user", content: [{ type: "input_text", text: "Hi" }] }], temperature: 0, max_output_tokens: 1 });
    const instructedChat = await openai.chat.completions.create({ model, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }], temperature: 0, max_tokens: 1 });
    expect(instructed.usage!.input_tokens).toBe(instructedChat.usage!.prompt_tokens);
    expect(instructed.usage!.input_tokens).toBeGreaterThan(response.usage!.input_tokens);
  });

  it("streams the typed events the SDK assembles (created, items added, deltas, done, completed) into the whole answer", async () => {
    const stream = openai.responses.stream({ model, input: "Hi", temperature: 0 });
    const deltas: Record<string, string> = { "response.reasoning_text.delta": "", "response.output_text.delta": "" };
    for await (const event of stream) if (event.type in deltas) deltas[event.type] += (event as { delta: string }).delta;
    const final = await stream.finalResponse();
    expect(final.status).toBe("completed");
    expect(final.output_text).toBe(answer);
    expect(deltas).toEqual({ "response.reasoning_text.delta": thoughts, "response.output_text.delta": answer });
    expect(final.usage?.output_tokens).toBe(generatedTokens);

    const events = await rawEvents({ model, input: "Hi", temperature: 0 });
    // Each event names its type twice (SSE's event line and the data's type), numbered from 0.
    expect(events.every(([name, data]) => name === data.type)).toBe(true);
    expect(events.map(([, data]) => data.sequence_number)).toEqual(events.map((_, i) => i));
    const order = events.map(([name]) => name).filter((name) => !name.endsWith(".delta"));
    expect(order).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.reasoning_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const completed = events.at(-1)![1].response;
    expect(completed.output.map((item: { id: string }) => item.id)).toEqual(events.filter(([name]) => name === "response.output_item.added").map(([, data]) => data.item.id));
  });

  it("cut by max_output_tokens: status incomplete (reason max_output_tokens), streamed or not", async () => {
    const whole = await openai.responses.create({ model, input: "Hi", temperature: 0, max_output_tokens: 4 });
    expect(whole.status).toBe("incomplete");
    expect(whole.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(whole.usage!.output_tokens).toBe(4);
    const stream = openai.responses.stream({ model, input: "Hi", temperature: 0, max_output_tokens: 4 });
    let last = "";
    for await (const event of stream) last = event.type;
    expect(last).toBe("response.incomplete");
    const final = await stream.finalResponse();
    expect([final.status, final.output_text]).toEqual(["incomplete", whole.output_text]);
  });

  it("a tool loop in input (function_call, function_call_output, reasoning items) is the prompt /v1/chat/completions makes of the same turns", async () => {
    const input: OpenAI.Responses.ResponseInput = [
      { role: "user", content: "Weather in Paris?" },
      { type: "reasoning", id: "rs_1", summary: [], content: [{ type: "reasoning_text", text: "I should call weather." }] },
      { type: "function_call", call_id: "c1", name: "weather", arguments: '{"city":"Paris"}' },
      { type: "function_call_output", call_id: "c1", output: '{"temperature":20}' },
    ];
    const response = await openai.responses.create({ model, input, tools: [weather], temperature: 0, max_output_tokens: 1 });
    const chat = await openai.chat.completions.create({
      model,
      tools: [weatherForChat],
      temperature: 0,
      max_tokens: 1,
      messages: [
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", reasoning_content: "I should call weather.", tool_calls: [{ id: "c1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } }] } as never,
        { role: "tool", tool_call_id: "c1", content: '{"temperature":20}' },
      ],
    });
    expect(response.usage!.input_tokens).toBe(chat.usage!.prompt_tokens);
    // The thoughts sent back are in the prompt (Qwen3's template shows a tool loop's thoughts).
    const withoutThoughts = await openai.responses.create({ model, input: input.filter((item) => (item as { type?: string }).type !== "reasoning"), tools: [weather], temperature: 0, max_output_tokens: 1 });
    expect(response.usage!.input_tokens).toBeGreaterThan(withoutThoughts.usage!.input_tokens);
  });

  it("a forced function call: a function_call item whose streamed arguments join to the whole answer's, as chat completions' forced call", async () => {
    const body = { model, input: "Weather in Paris?", tools: [weather], tool_choice: { type: "function" as const, name: "weather" }, temperature: 0, max_output_tokens: 20 };
    const whole = await openai.responses.create(body);
    const call = whole.output.find((item) => item.type === "function_call") as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call.name).toBe("weather");
    expect(call.call_id).toMatch(/^call_/);
    const chat = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Weather in Paris?" }], tools: [weatherForChat], tool_choice: { type: "function", function: { name: "weather" } }, temperature: 0, max_tokens: 20 });
    expect(call.arguments).toBe((chat.choices[0]!.message.tool_calls![0] as { function: { arguments: string } }).function.arguments);
    const stream = openai.responses.stream(body);
    let streamed = "";
    for await (const event of stream) if (event.type === "response.function_call_arguments.delta") streamed += event.delta;
    const final = await stream.finalResponse();
    const finalCall = final.output.find((item) => item.type === "function_call") as OpenAI.Responses.ResponseFunctionToolCall;
    expect([streamed, finalCall.arguments, finalCall.name]).toEqual([call.arguments, call.arguments, "weather"]);
  });

  it("as Codex asks: developer messages, tools it does not run here (web_search, a namespace) left out beside its functions, the thoughts sent back from encrypted_content", async () => {
    const codexLike = {
      model,
      input: [
        { type: "message" as const, role: "developer" as const, content: [{ type: "input_text" as const, text: "Be brief." }] },
        { type: "message" as const, role: "user" as const, content: [{ type: "input_text" as const, text: "Hi" }] },
      ],
      tools: [weather, { type: "web_search" }, { type: "namespace", name: "agents", description: "x", tools: [] }] as never,
      include: ["reasoning.encrypted_content" as const],
      store: false,
      temperature: 0,
      max_output_tokens: 1,
    };
    const answer = await openai.responses.create(codexLike);
    const functionsOnly = await openai.responses.create({ ...codexLike, tools: [weather] });
    expect(answer.usage!.input_tokens).toBe(functionsOnly.usage!.input_tokens);
    const whole = await openai.responses.create({ ...codexLike, max_output_tokens: 40 });
    const reasoning = whole.output[0] as OpenAI.Responses.ResponseReasoningItem;
    expect(reasoning.encrypted_content).toBe(thoughts);
    // Sent back with only its encrypted_content (as Codex does), the thoughts reach the prompt as when sent as text.
    const call = [{ type: "function_call" as const, call_id: "c1", name: "weather", arguments: '{"city":"Paris"}' }, { type: "function_call_output" as const, call_id: "c1", output: "sunny" }];
    const viaCopy = await openai.responses.create({ ...codexLike, tools: [weather], input: [...codexLike.input, { type: "reasoning", id: "rs_1", summary: [], encrypted_content: "I should call weather." }, ...call] });
    const viaText = await openai.responses.create({ ...codexLike, tools: [weather], input: [...codexLike.input, { type: "reasoning", id: "rs_1", summary: [], content: [{ type: "reasoning_text", text: "I should call weather." }] }, ...call] });
    expect(viaCopy.usage!.input_tokens).toBe(viaText.usage!.input_tokens);
  });

  it("text.format json_schema: the answer (after the thoughts) is JSON that follows the schema", async () => {
    const schema = { type: "object", properties: { a: { type: "string", enum: ["x", "y"] } }, required: ["a"], additionalProperties: false };
    const response = await openai.responses.create({ model, input: "Hi", temperature: 0, max_output_tokens: 40, text: { format: { type: "json_schema", name: "pick", schema, strict: true } } });
    expect(["x", "y"]).toContain(JSON.parse(response.output_text).a);
    expect(response.text?.format).toMatchObject({ type: "json_schema", name: "pick" });
  });

  it("what it cannot do is a 400 in OpenAI's shape that says why: stored state, other tool types, images, orphan outputs, an empty input; an unknown model is a 404", async () => {
    const cases: Array<[object, RegExp, string]> = [
      [{ input: "Hi", previous_response_id: "resp_1" }, /stores no responses/, "previous_response_id"],
      [{ input: "Hi", conversation: "conv_1" }, /stores no responses/, "conversation"],
      [{ input: [{ role: "user", content: [{ type: "input_image", image_url: "http://x/y.png" }] }] }, /text-only/, "input[0].content[0]"],
      [{ input: [{ type: "function_call_output", call_id: "c9", output: "x" }] }, /no earlier function_call/, "input[0].call_id"],
      [{ input: [{ type: "item_reference", id: "msg_1" }] }, /stores no responses|stored item/, "input[0].type"],
      [{ input: "" }, /empty/, "input"],
    ];
    for (const [body, message, param] of cases) {
      const error = await openai.responses.create({ model, ...body } as never).catch((e) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error.message).toMatch(message);
      expect(error.param).toBe(param);
    }
    const missing = await openai.responses.create({ model: "nope", input: "Hi" }).catch((e) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    // The server answers as before.
    const after = await request(`${server.url}/v1/responses`, { json: { model, input: "Hi", temperature: 0 } });
    expect(after.status).toBe(200);
    expect(after.body.output.at(-1).content[0].text).toBe(answer);
  });
});
