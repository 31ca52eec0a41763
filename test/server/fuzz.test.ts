import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startServe, type ServeProcess } from "./helpers.js";

vi.setConfig({ testTimeout: 240_000, hookTimeout: 120_000 });

/**
 * Mutated requests (fields removed, replaced by values of the wrong type, absurd numbers, hostile
 * strings, broken JSON) against every JSON endpoint of a real `lmrun serve`: every answer is a 2xx or
 * a 4xx (503/504 allowed: a busy or timed-out slot), never another 5xx, and the server still answers.
 * Seeded, so a failure repeats; bounded in count and time.
 */

const REQUESTS = 600;

function generator(seed: number) {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const oddValues: unknown[] = [
    null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53, "", "x", "tiny", "../etc/passwd", "http://127.0.0.1/x", "/etc/passwd", "\u0000",
    "a".repeat(5000), [], [1], ["a"], [null], {}, { a: 1 }, { type: "function" }, [{}], [{ role: "user" }], [{ role: "user", content: [] }],
    [{ role: "tool", content: "x" }], [{ role: "assistant", tool_calls: [{}] }], "-1", "5m", -0.0001, 1e6, [[[]]], { constructor: 1 },
  ];
  const odd = () => pick(oddValues);
  const mutate = (value: unknown, depth = 0): unknown => {
    if (value === null || typeof value !== "object") return random() < 0.5 ? odd() : value;
    const copy: Record<string, unknown> = Array.isArray(value) ? ([...value] as unknown as Record<string, unknown>) : { ...(value as object) };
    const keys = Object.keys(copy);
    for (let changes = 1 + Math.floor(random() * 3); changes > 0; changes--) {
      const r = random();
      if (keys.length === 0 || r < 0.15) copy[pick(["unknown", "model", "messages", "stream", "options", "format", "tools", "input", "prompt"])] = odd();
      else if (r < 0.3) delete copy[pick(keys)];
      else if (r < 0.7 && depth < 4) copy[pick(keys)] = mutate(copy[pick(keys)], depth + 1);
      else copy[pick(keys)] = odd();
    }
    return copy;
  };
  return { random, pick, mutate };
}

// Valid requests of every JSON endpoint, small enough to answer quickly (a mutation may lift the limits: --timeout bounds them).
const templates: Array<[string, object]> = [
  ["/v1/chat/completions", { model: "tiny", messages: [{ role: "system", content: "s" }, { role: "user", content: "Hi" }], max_tokens: 4, temperature: 0, stop: ["x"], tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string" } } } } }], tool_choice: "auto", response_format: { type: "text" }, stream_options: { include_usage: true }, seed: 1, top_k: 10, presence_penalty: 0.1, parallel_tool_calls: true, reasoning_effort: "low", chat_template_kwargs: { enable_thinking: true } }],
  ["/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 8, tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string" } } } } }], tool_choice: { type: "function", function: { name: "f" } }, stream: true }],
  ["/v1/completions", { model: "tiny", prompt: "Once", max_tokens: 4, temperature: 0, stream: false, echo: false, suffix: "", stop: "x", n: 1, logprobs: 2 }],
  ["/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, stream: true, logprobs: true, top_logprobs: 3, stop: ["x"] }],
  ["/v1/embeddings", { model: "tiny", input: ["a", "b"], encoding_format: "float", dimensions: 8 }],
  ["/v1/responses", { model: "tiny", instructions: "s", input: [{ role: "user", content: [{ type: "input_text", text: "Hi" }] }, { type: "function_call", call_id: "c1", name: "f", arguments: "{}" }, { type: "function_call_output", call_id: "c1", output: "r" }, { type: "reasoning", summary: [{ type: "summary_text", text: "t" }] }, { role: "assistant", content: [{ type: "output_text", text: "ok" }] }, { role: "user", content: "more" }], max_output_tokens: 4, temperature: 0, text: { format: { type: "json_schema", name: "x", schema: { type: "object" } } }, reasoning: { effort: "low" }, truncation: "auto" }],
  ["/v1/responses", { model: "tiny", input: "Hi", include: ["message.output_text.logprobs"], top_logprobs: 2, max_output_tokens: 8, tools: [{ type: "function", name: "f", parameters: { type: "object", properties: { a: { type: "string" } } } }], tool_choice: { type: "function", name: "f" }, stream: true }],
  ["/v1/messages", { model: "tiny", max_tokens: 4, system: [{ type: "text", text: "s" }], messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: [{ type: "thinking", thinking: "t", signature: "" }, { type: "tool_use", id: "t1", name: "f", input: { a: "x" } }] }, { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "r" }] }, { type: "text", text: "go on" }] }], tool_choice: { type: "auto" }, stop_sequences: ["x"], temperature: 0, thinking: { type: "enabled", budget_tokens: 1024 } }],
  ["/v1/messages", { model: "tiny", max_tokens: 8, messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }], tools: [{ name: "f", input_schema: { type: "object", properties: { a: { type: "string" } } } }], tool_choice: { type: "tool", name: "f" }, stream: true }],
  ["/v1/messages/count_tokens", { model: "tiny", system: "s", messages: [{ role: "user", content: "Hi" }] }],
  ["/api/generate", { model: "tiny", prompt: "Once", system: "s", stream: false, format: "json", keep_alive: "5m", context: [1, 2], options: { num_predict: 4, temperature: 0, top_k: 5, seed: 1, stop: ["x"], num_ctx: 256, repeat_penalty: 1.1 }, truncate: true, think: false }],
  ["/api/chat", { model: "tiny", messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: { a: 1 } } }] }, { role: "tool", content: "r", tool_name: "f" }], tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }], stream: false, format: { type: "object", properties: { a: { type: "string" } } }, options: { num_predict: 4 }, think: "low" }],
  ["/api/generate", { model: "tiny", prompt: "Once", stream: true, logprobs: true, top_logprobs: 2, options: { num_predict: 4 } }],
  ["/infill", { model: "tiny", input_prefix: "a", input_suffix: "b", prompt: "c", input_extra: [{ filename: "f", text: "t" }], n_predict: 4, stream: false, response_fields: ["content"] }],
  ["/v1/completions", { model: "tiny", prompt: [[1, 403, 407], [9, 10]], max_tokens: 1, temperature: 0, logprobs: 1, echo: true, seed: 1234 }],
  ["/v1/completions", { model: "tiny", prompt: "Once upon", max_tokens: 0, echo: true, logprobs: 3 }],
  ["/tokenize", { model: "tiny", prompt: "Once <s>", add_special_tokens: false }],
  ["/tokenize", { content: "Once", add_special: true, parse_special: false, with_pieces: true }],
  ["/detokenize", { model: "tiny", tokens: [1, 403, 407] }],
  ["/api/embed", { model: "tiny", input: ["a"], truncate: true, dimensions: 4 }],
  ["/api/embeddings", { model: "tiny", prompt: "a" }],
  ["/api/show", { model: "tiny", verbose: true }],
];
const brokenBodies = ["{", "[]", "null", "1", '"x"', '{"model":', "\uFEFF{}", "{}{}"];

let server: ServeProcess;

beforeAll(async () => {
  server = await startServe(["tiny", "-c", "256", "--parallel", "2", "--timeout", "10s", "--keep-alive", "-1", "--log-format", "json"]);
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

describe("lmrun serve: mutated requests", () => {
  it(`${REQUESTS} mutated requests get 2xx or 4xx answers in the API's shape, and the server still serves`, async () => {
    const { random, pick, mutate } = generator(20261207);
    const serverErrors: string[] = [];
    const statuses = new Map<number, number>();
    const startedAt = Date.now();
    for (let i = 0; i < REQUESTS && Date.now() - startedAt < 180_000; i++) {
      const [path, template] = pick(templates);
      const body = random() < 0.05 ? pick(brokenBodies) : JSON.stringify(mutate(template));
      const res = await fetch(server.url + path, { method: "POST", body, headers: { "content-type": "application/json" } });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500 && res.status !== 503 && res.status !== 504) serverErrors.push(`${path} ${res.status} ${text.slice(0, 200)} <- ${body.slice(0, 300)}`);
      // Errors are JSON bodies with a message, in either API's shape.
      if (res.status >= 400) expect(JSON.stringify(JSON.parse(text))).toMatch(/"(error|message)"/);
    }
    expect(serverErrors).toEqual([]);
    // The mix reached the models, not only the validation: some answers succeeded, most were refused.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(REQUESTS / 10);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(REQUESTS / 3);
    const after = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "Once upon a time", max_tokens: 8, temperature: 0 }) });
    expect(after.status).toBe(200);
    expect((await after.json()).usage.completion_tokens).toBe(8);
  });
});
