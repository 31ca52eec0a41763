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
 * The calls in a forced answer's JSON. Cut short by max tokens, a call keeps its arguments as far as they
 * were written (as OpenAI returns one, with finish_reason "length"), and a `required` answer has the calls
 * whose names were written, as its stream showed them.
 */
export function parseForcedCalls(text: string, choice: ToolChoice | undefined): ToolCall[] | undefined {
  if (choice === undefined || choice === "auto") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    if (choice.kind === "function") return text !== "" ? [{ name: choice.name, arguments: undefined, argumentsText: text }] : undefined;
    const calls: ToolCall[] = [];
    for (const piece of new ForcedCallStream().push(text)) {
      if ("name" in piece) calls[piece.index] = { name: piece.name, arguments: undefined, argumentsText: "" };
      else if (calls[piece.index]) calls[piece.index]!.argumentsText += piece.arguments;
    }
    const named = calls.filter((call) => call !== undefined);
    return named.length > 0 ? named : undefined;
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

/** A piece of a `required` forced answer as OpenAI streams calls: a call's name, then its arguments' JSON. */
export type ForcedCallPiece = { index: number; name: string } | { index: number; arguments: string };

/**
 * A forced call's JSON as it is generated (onCallArguments), read into the pieces a stream sends: a named
 * function's text is its arguments (call 0, named from the start); a `required` answer is read by
 * ForcedCallStream. Empty text gives nothing.
 */
export function forcedCallReader(choice: { kind: "function"; name: string } | { kind: "required"; parallel: boolean }): (text: string) => ForcedCallPiece[] {
  if (choice.kind === "required") {
    const stream = new ForcedCallStream();
    return (text) => (text.length > 0 ? stream.push(text) : []);
  }
  let named = false;
  return (text) => {
    if (text.length === 0) return [];
    const pieces: ForcedCallPiece[] = named ? [] : [{ index: 0, name: choice.name }];
    named = true;
    return [...pieces, { index: 0, arguments: text }];
  };
}

/**
 * A `required` forced answer read as it is generated (`{"name": …, "arguments": {…}}`, or a list of them):
 * each call's name once its value is whole, then its arguments' text as it comes, so a stream can send
 * the call the way OpenAI streams one. The grammar makes the text valid JSON with the name before the
 * arguments (the schema's order); anything else yields nothing, and the whole answer still comes at the end.
 */
export class ForcedCallStream {
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The depth inside a call object: 1 for a single call, 2 inside a list. */
  private callDepth: number | undefined;
  private index = -1;
  private expectKey = false;
  private key: string | undefined;
  private stringText = "";
  private stringIsKey = false;
  private argumentsNext = false;
  /** Inside a call's arguments: the depth they close back to. */
  private argumentsBase: number | undefined;
  private argumentsIsContainer = false;

  push(text: string): ForcedCallPiece[] {
    const pieces: ForcedCallPiece[] = [];
    let args = "";
    const flushArgs = () => {
      if (args !== "") pieces.push({ index: this.index, arguments: args });
      args = "";
    };
    for (const char of text) {
      if (this.argumentsBase === undefined && this.argumentsNext && !/\s/.test(char)) {
        this.argumentsNext = false;
        this.argumentsBase = this.depth;
        this.argumentsIsContainer = char === "{" || char === "[";
      }
      if (this.argumentsBase !== undefined) {
        // A plain value (not an object) ends where the call goes on; that character is the call's.
        const plainValueEnds = !this.argumentsIsContainer && !this.inString && this.depth === this.argumentsBase && (char === "," || char === "}" || char === "]");
        if (!plainValueEnds) {
          args += char;
          this.track(char);
          if (!this.argumentsIsContainer || this.inString || this.depth !== this.argumentsBase) continue;
        }
        this.argumentsBase = undefined;
        flushArgs();
        if (!plainValueEnds) continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (char === "\\") this.escaped = true;
        else if (char === '"') {
          this.inString = false;
          if (this.stringIsKey) this.key = this.stringText;
          if (this.key === "name" && !this.stringIsKey && this.depth === this.callDepth) {
            try {
              pieces.push({ index: this.index, name: JSON.parse(`"${this.stringText}"`) as string });
            } catch {
              // Not a JSON string: no piece; the whole answer comes at the end.
            }
          }
          continue;
        }
        this.stringText += char;
        continue;
      }
      if (char === '"') {
        this.inString = true;
        this.stringText = "";
        this.stringIsKey = this.expectKey && this.depth === this.callDepth;
        continue;
      }
      if (this.callDepth === undefined && (char === "[" || char === "{")) this.callDepth = char === "[" ? 2 : 1;
      this.track(char);
      if (char === "{" && this.depth === this.callDepth) {
        this.index += 1;
        this.expectKey = true;
        this.key = undefined;
      } else if (this.depth === this.callDepth && char === ",") this.expectKey = true;
      else if (this.depth === this.callDepth && char === ":") {
        this.expectKey = false;
        this.argumentsNext = this.key === "arguments";
      }
    }
    flushArgs();
    return pieces;
  }

  /** Nesting and strings, outside the call's own keys. */
  private track(char: string): void {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (char === "\\") this.escaped = true;
      else if (char === '"') this.inString = false;
      return;
    }
    if (char === '"') this.inString = true;
    else if (char === "{" || char === "[") this.depth += 1;
    else if (char === "}" || char === "]") this.depth -= 1;
  }
}
