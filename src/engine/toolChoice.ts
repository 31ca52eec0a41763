import type { ToolCall, ToolChoice, ToolDefinition } from "./types.js";

/**
 * A forced tool call (OpenAI's `tool_choice: "required"` or a named function) as grammar-constrained
 * JSON, the way vLLM and llama-server force one: the model sees the tools documented as its chat
 * wrapper documents them, and its answer must be the JSON this schema describes, so it is always a
 * call with arguments that validate. node-llama-cpp's own function calling lets the model choose
 * whether to call, so it serves `auto` only.
 */

const ANY_OBJECT = { type: "object", properties: {} } as const;

/** The JSON schema a forced answer must follow, or undefined when the model may answer in text. */
export function forcedCallSchema(tools: readonly ToolDefinition[], choice: ToolChoice | undefined): object | undefined {
  if (choice === undefined || choice === "auto" || tools.length === 0) return undefined;
  if (choice.kind === "function") {
    const tool = tools.find((t) => t.name === choice.name);
    if (tool === undefined) throw new Error(`tool_choice names ${choice.name}, which is not among the tools`);
    return tool.parameters ?? ANY_OBJECT;
  }
  // "required": one call, or a list of calls when parallel calls are allowed, each naming its function.
  const call = (tool: ToolDefinition) => ({
    type: "object",
    properties: { name: { const: tool.name }, arguments: tool.parameters ?? ANY_OBJECT },
  });
  const oneCall = tools.length === 1 ? call(tools[0]!) : { oneOf: tools.map(call) };
  return choice.parallel ? { type: "array", items: oneCall, minItems: 1 } : oneCall;
}

/**
 * The calls in a forced answer's JSON. A named function's call keeps its arguments as written, whole or
 * cut short by max tokens (as OpenAI returns it, with finish_reason "length"); a `required` answer that is
 * not whole is no call.
 */
export function parseForcedCalls(text: string, choice: ToolChoice | undefined): ToolCall[] | undefined {
  if (choice === undefined || choice === "auto") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return choice.kind === "function" && text !== "" ? [{ name: choice.name, arguments: undefined, argumentsText: text }] : undefined;
  }
  if (choice.kind === "function") return [{ name: choice.name, arguments: value, argumentsText: text }];
  const calls = Array.isArray(value) ? value : [value];
  const parsed: ToolCall[] = [];
  for (const item of calls) {
    if (typeof item !== "object" || item === null || typeof (item as { name?: unknown }).name !== "string") return undefined;
    const { name, arguments: args } = item as { name: string; arguments?: unknown };
    parsed.push({ name, arguments: args ?? {} });
  }
  return parsed.length > 0 ? parsed : undefined;
}
