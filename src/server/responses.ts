import type { IncomingMessage, ServerResponse } from "node:http";
import { linkToolResults } from "../engine/conversation.js";
import { forcedCallReader } from "../engine/toolChoice.js";
import { MAX_TOP_LOGPROBS, type ChatMessage, type ToolDefinition } from "../engine/types.js";
import { Fields, readSampling } from "./fields.js";
import { badRequest, clientGone, randomId, sendJson, streamAnswer, StreamWriter } from "./http.js";
import { bodyWithModel, thinkOf, toolChoiceOf, type AdapterContext } from "./openai.js";
import { tokenLogprobs } from "./logprobs.js";
import type { Job, JobOutcome } from "./service.js";

/**
 * OpenAI's Responses API (POST /v1/responses), stateless as ollama's and llama-server's: the whole
 * conversation comes in `input` every time and nothing is stored, so `previous_response_id` and
 * `conversation` are refused. Text, a thinking model's thoughts (a `reasoning` item with its
 * `reasoning_text`), function calls and JSON answers (`text.format`), streamed as the typed events
 * OpenAI's SDK assembles, or whole.
 */

const MAX_ITEMS = 10_000;

/** A conversation read from `input`, with the input index each message came from (for errors). */
interface Conversation {
  messages: ChatMessage[];
  from: number[];
}

function partsText(value: unknown, item: Fields, field: string, at: string, kinds: string[]): string {
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) throw badRequest(`"${at}.${field}" must be a string or an array of parts`, `${at}.${field}`);
  return value
    .map((_, index) => {
      const part = item.item(field, value, index);
      const type = part.string("type", { required: true })!;
      if (kinds.includes(type)) return part.string("text", { required: true })!;
      if (type === "input_image" || type === "input_file" || type === "input_audio") throw badRequest(`${type} parts are not supported: lmrun serves text-only models`, `${at}.${field}[${index}]`);
      throw badRequest(`"${at}.${field}[${index}].type" ${JSON.stringify(type)} is not supported (${kinds.join(", ")})`, `${at}.${field}[${index}].type`);
    })
    .join("\n");
}

/** `instructions` and `input` (a string, or message, function call, function call output and reasoning items) as chat messages. */
function conversationOf(f: Fields): Conversation {
  const messages: ChatMessage[] = [];
  const from: number[] = [];
  const instructions = f.string("instructions");
  if (instructions !== undefined && instructions !== "") {
    messages.push({ role: "system", text: instructions });
    from.push(-1);
  }
  const input = f.raw("input");
  if (typeof input === "string") {
    if (input === "") throw badRequest('"input" is empty', "input");
    messages.push({ role: "user", text: input });
    from.push(0);
    return { messages, from };
  }
  const items = f.array("input", { required: true, maxItems: MAX_ITEMS })!;
  if (items.length === 0) throw badRequest('"input" must not be empty', "input");
  // Thoughts sent back go with the assistant turn that follows them.
  let thinking: string | undefined;
  /** The assistant message function calls join: the one just before them in the input. */
  const assistantTurn = (index: number): ChatMessage => {
    const last = messages.at(-1);
    if (last?.role === "assistant") return last;
    const turn: ChatMessage = { role: "assistant", text: "" };
    messages.push(turn);
    from.push(index);
    return turn;
  };
  items.forEach((_, index) => {
    const item = f.item("input", items, index);
    const at = `input[${index}]`;
    const type = item.string("type") ?? "message";
    if (type === "message") {
      const role = item.string("role", { required: true });
      const text = partsText(item.raw("content"), item, "content", at, ["input_text", "output_text", "text"]);
      if (role === "system" || role === "developer" || role === "user") messages.push({ role: role === "user" ? "user" : "system", text });
      else if (role === "assistant") {
        messages.push({ role: "assistant", text, ...(thinking !== undefined ? { thinking } : {}) });
        thinking = undefined;
      } else throw badRequest(`"${at}.role" must be system, developer, user or assistant (got ${JSON.stringify(role)})`, `${at}.role`);
      from.push(index);
    } else if (type === "function_call") {
      const name = item.string("name", { required: true })!;
      const args = item.string("arguments") ?? "{}";
      let parsed: unknown;
      try {
        parsed = JSON.parse(args);
      } catch {
        parsed = args; // a model's malformed call replays as it was
      }
      const turn = assistantTurn(index);
      if (thinking !== undefined && turn.thinking === undefined) turn.thinking = thinking;
      thinking = undefined;
      turn.toolCalls = [...(turn.toolCalls ?? []), { id: item.string("call_id", { required: true })!, name, arguments: parsed }];
    } else if (type === "function_call_output") {
      const output = item.raw("output");
      const text = typeof output === "string" ? output : partsText(output, item, "output", at, ["input_text", "output_text", "text"]);
      messages.push({ role: "tool", text, toolCallId: item.string("call_id", { required: true })! });
      from.push(index);
    } else if (type === "reasoning") {
      thinking = reasoningText(item, at);
    } else if (type === "item_reference") {
      throw badRequest(`"${at}" refers to a stored item: lmrun stores no responses (send the items themselves)`, `${at}.type`);
    } else {
      throw badRequest(`"${at}.type" ${JSON.stringify(type)} is not supported (message, function_call, function_call_output, reasoning)`, `${at}.type`);
    }
  });
  if (messages.length === 0 || messages.every((m) => m.role === "system")) throw badRequest('"input" has no message to answer', "input");
  const { orphan } = linkToolResults(messages);
  if (orphan !== undefined) {
    const index = from[orphan]!;
    throw badRequest(`"input[${index}]" is a function_call_output, but no earlier function_call has its call_id`, `input[${index}].call_id`);
  }
  return { messages, from };
}

/** A reasoning item's text: its reasoning_text content, else its summary (else ollama's encrypted_content, which is the text). */
function reasoningText(item: Fields, at: string): string | undefined {
  const content = item.array("content");
  if (content && content.length > 0) return partsText(content, item, "content", at, ["reasoning_text"]);
  const summary = item.array("summary");
  if (summary && summary.length > 0) return partsText(summary, item, "summary", at, ["summary_text"]);
  const encrypted = item.string("encrypted_content");
  return encrypted !== undefined && encrypted !== "" ? encrypted : undefined;
}

/**
 * Function tools in the Responses shape (`{type, name, description, parameters}`). The others are run by
 * OpenAI's servers (web_search, file_search, code_interpreter …) or have no function form (custom
 * grammar tools, namespaces): they are left out, as llama-server leaves them, so that a client that
 * always declares some (Codex declares web_search and a namespace) still works with its functions.
 */
function toolsOf(f: Fields): ToolDefinition[] | undefined {
  if (f.raw("tool_choice") === "none") return undefined;
  const items = f.array("tools", { maxItems: 128 });
  if (!items || items.length === 0) return undefined;
  const tools = items.flatMap((_, index) => {
    const tool = f.item("tools", items, index);
    if (tool.string("type", { required: true }) !== "function") return [];
    const name = tool.string("name", { required: true, maxLength: 64 })!;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw badRequest(`"tools[${index}].name" may hold letters, digits, _ and - only`, `tools[${index}].name`);
    return [{ name, description: tool.string("description"), parameters: tool.object("parameters") ? (tool.raw("parameters") as object) : undefined }];
  });
  return tools.length > 0 ? tools : undefined;
}

/** `text.format`: text, json_object, or json_schema (grammar-constrained, as response_format). */
function formatOf(f: Fields): { jsonSchema: Job["jsonSchema"]; echo: object } {
  const format = f.object("text")?.object("format");
  if (!format) return { jsonSchema: undefined, echo: { type: "text" } };
  const type = format.string("type", { required: true });
  if (type === "text") return { jsonSchema: undefined, echo: { type: "text" } };
  if (type === "json_object") return { jsonSchema: "json", echo: { type: "json_object" } };
  if (type === "json_schema") {
    const schema = format.raw("schema");
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw badRequest('"text.format.schema" must be a JSON schema object', "text.format.schema");
    return { jsonSchema: schema, echo: { type: "json_schema", name: format.string("name") ?? "response", schema, strict: format.boolean("strict") ?? null } };
  }
  throw badRequest(`"text.format.type" must be text, json_object or json_schema (got ${JSON.stringify(type)})`, "text.format.type");
}


type OutputItem = Record<string, unknown> & { type: string; id: string };

function messageItem(id: string, text: string, status: string, logprobs: ReturnType<typeof tokenLogprobs> = []): OutputItem {
  return { id, type: "message", status, role: "assistant", content: [{ type: "output_text", text, annotations: [], logprobs }] };
}

/**
 * A thinking model's thoughts. With `include: ["reasoning.encrypted_content"]` (Codex asks for it, to send
 * the thoughts back) they are in `encrypted_content` too, as ollama puts them: nothing here is secret.
 */
function reasoningItem(id: string, text: string, withCopy: boolean): OutputItem {
  return { id, type: "reasoning", summary: [], content: [{ type: "reasoning_text", text }], ...(withCopy ? { encrypted_content: text } : {}) };
}

function callItem(id: string, callId: string, name: string, args: string, status: string): OutputItem {
  return { id, type: "function_call", status, call_id: callId, name, arguments: args };
}

function incomplete(outcome: JobOutcome): boolean {
  return outcome.result.stopReason === "maxTokens" || outcome.timedOut;
}

function usageOf(outcome: JobOutcome) {
  const { promptTokens, generatedTokens, cachedPromptTokens, thinkingTokens } = outcome.result;
  return {
    input_tokens: promptTokens,
    input_tokens_details: { cached_tokens: cachedPromptTokens },
    output_tokens: generatedTokens,
    output_tokens_details: { reasoning_tokens: thinkingTokens ?? 0 },
    total_tokens: promptTokens + generatedTokens,
  };
}

/** The calls' text as OpenAI gives it: the arguments' JSON as the model wrote it. */
function callArguments(call: NonNullable<JobOutcome["result"]["toolCalls"]>[number]): string {
  return call.argumentsText ?? JSON.stringify(call.arguments ?? {});
}

export async function responses(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { f, model } = await bodyWithModel(ctx, req);
  for (const stateful of ["previous_response_id", "conversation"]) {
    const value = f.raw(stateful);
    if (value !== undefined && value !== null && value !== "") throw badRequest(`"${stateful}" is not supported: lmrun stores no responses, so send the whole conversation in "input" (as ollama's and llama-server's /v1/responses)`, stateful);
  }
  const { messages } = conversationOf(f);
  const tools = toolsOf(f);
  const toolChoice = toolChoiceOf(f, tools);
  const { jsonSchema, echo: formatEcho } = formatOf(f);
  if (tools && jsonSchema !== undefined) throw badRequest('"tools" and a JSON "text.format" cannot be combined', "text.format");
  const truncation = f.string("truncation") ?? "disabled";
  if (truncation !== "disabled" && truncation !== "auto") throw badRequest('"truncation" must be auto or disabled', "truncation");
  const maxTokens = f.number("max_output_tokens", { integer: true, min: 1 });
  const stream = f.boolean("stream") === true;
  const include = f.strings("include", { maxItems: 16 }) ?? [];
  const thoughtsCopied = include.includes("reasoning.encrypted_content");
  // Token log-probabilities in the output text, as OpenAI gives them when `include` asks (top_logprobs alone does not).
  const topLogprobs = f.number("top_logprobs", { integer: true, min: 0, max: MAX_TOP_LOGPROBS });
  const logprobs = include.includes("message.output_text.logprobs") ? { top: topLogprobs ?? 0 } : undefined;
  const job = {
    model,
    modelParam: "model",
    prompt: "",
    messages,
    chat: true,
    // "auto" drops the oldest turns of a conversation too long for the context, as OpenAI's truncation does.
    truncate: truncation === "auto",
    maxTokens,
    maxTokensParam: "max_output_tokens",
    sampling: readSampling(f, 2),
    stop: [],
    jsonSchema,
    tools,
    toolChoice,
    think: thinkOf(f),
    logprobs,
  };
  const id = randomId("resp");
  const createdAt = Math.floor(Date.now() / 1000);
  const modelName = ctx.service.model(model, "model").name;
  const reasoning = f.object("reasoning");
  /** The response object around its output (what OpenAI echoes of the request, and the result). */
  const responseObject = (status: string, output: OutputItem[], outcome?: JobOutcome) => ({
    id,
    object: "response",
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: f.string("instructions") ?? null,
    max_output_tokens: maxTokens ?? null,
    model: modelName,
    output,
    parallel_tool_calls: f.boolean("parallel_tool_calls") !== false,
    previous_response_id: null,
    reasoning: reasoning ? { effort: reasoning.string("effort") ?? null, summary: reasoning.string("summary") ?? null } : null,
    store: false,
    temperature: f.number("temperature") ?? null,
    text: { format: formatEcho },
    tool_choice: f.raw("tool_choice") ?? "auto",
    tools: f.array("tools") ?? [],
    top_p: f.number("top_p") ?? null,
    truncation,
    usage: outcome ? usageOf(outcome) : null,
    metadata: f.object("metadata") ? f.raw("metadata") : {},
  });

  const signal = clientGone(res);
  if (!stream) {
    const outcome = await ctx.service.run({ ...job, signal });
    ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
    const cut = incomplete(outcome);
    const { text, thinking, toolCalls } = outcome.result;
    const output: OutputItem[] = [];
    if (thinking !== undefined) output.push(reasoningItem(randomId("rs"), thinking, thoughtsCopied));
    const textLogprobs = logprobs !== undefined && outcome.result.logprobs !== undefined ? tokenLogprobs(outcome.result.logprobs) : [];
    if (text !== "" || toolCalls === undefined) output.push(messageItem(randomId("msg"), text, cut ? "incomplete" : "completed", textLogprobs));
    for (const call of toolCalls ?? []) output.push(callItem(randomId("fc"), randomId("call"), call.name, callArguments(call), cut ? "incomplete" : "completed"));
    sendJson(res, 200, responseObject(cut ? "incomplete" : "completed", output, outcome));
    return;
  }

  const writer = new StreamWriter(res, "text/event-stream; charset=utf-8");
  const events = new ResponseEvents((text) => writer.send(text), thoughtsCopied);
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    const snapshot = responseObject("in_progress", []);
    events.send("response.created", { response: snapshot });
    events.send("response.in_progress", { response: snapshot });
  };
  // A forced call streams as OpenAI streams calls: its item, then its arguments in pieces.
  const readCall = toolChoice !== undefined && toolChoice !== "auto" ? forcedCallReader(toolChoice) : undefined;
  await streamAnswer(
    writer,
    { text: ": ping\n\n", ms: ctx.pingMs },
    () =>
      ctx.service.run({
        ...job,
        signal,
        onStart: start,
        onThought: (text) => {
          start();
          if (text.length > 0) events.thought(text);
        },
        onText: (text, tokens) => {
          start();
          if (text.length > 0) events.text(text, logprobs !== undefined && tokens !== undefined ? tokenLogprobs(tokens) : []);
        },
        ...(readCall !== undefined
          ? {
              onCallArguments: (text: string) => {
                start();
                for (const piece of readCall(text)) events.callArguments(piece.index, "name" in piece ? piece.name : undefined, "name" in piece ? "" : piece.arguments);
              },
            }
          : {}),
      }),
    (outcome) => {
      ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
      start();
      const cut = incomplete(outcome);
      const output = events.finish(outcome, cut);
      events.send(cut ? "response.incomplete" : "response.completed", { response: responseObject(cut ? "incomplete" : "completed", output, outcome) });
    },
    // Headers are out: the error is an `error` event (OpenAI's fields, and `error` for the SDKs, which throw on it).
    (e) => {
      const details = { message: e.message, type: e.details.type ?? "server_error", param: e.details.param ?? null, code: e.details.code ?? null };
      return events.format("error", { code: details.code, message: details.message, param: details.param, error: details });
    },
  );
}

/**
 * The Responses stream's events, in the order OpenAI's SDK assembles them: each output item is added,
 * its content part added, its deltas, then done (text, part, item). Thoughts, the answer and the calls
 * are items of their own; an item ends when the next begins.
 */
class ResponseEvents {
  private sequence = 0;
  private readonly output: OutputItem[] = [];
  private open: { kind: "reasoning" | "message"; id: string; text: string; logprobs: ReturnType<typeof tokenLogprobs> } | undefined;
  /** Calls streamed as they are generated (forced ones): by call index. */
  private readonly calls: { outputIndex: number; id: string; callId: string; name: string; args: string }[] = [];

  constructor(
    private readonly write: (text: string) => void,
    /** Thoughts also as encrypted_content (the request's include). */
    private readonly thoughtsCopied: boolean,
  ) {}

  send(type: string, fields: object): void {
    this.write(this.format(type, fields));
  }

  /** The next event's text (numbered), for the caller to write. */
  format(type: string, fields: object): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.sequence++, ...fields })}\n\n`;
  }

  thought(text: string): void {
    this.ensureOpen("reasoning");
    this.open!.text += text;
    this.send("response.reasoning_text.delta", { item_id: this.open!.id, output_index: this.output.length, content_index: 0, delta: text });
  }

  text(text: string, logprobs: ReturnType<typeof tokenLogprobs>): void {
    this.ensureOpen("message");
    this.open!.text += text;
    this.open!.logprobs.push(...logprobs);
    this.send("response.output_text.delta", { item_id: this.open!.id, output_index: this.output.length, content_index: 0, delta: text, logprobs });
  }

  /** A piece of a streamed call: its name when it starts, then arguments. */
  callArguments(index: number, name: string | undefined, args: string): void {
    let call = this.calls[index];
    if (call === undefined) {
      this.close("completed");
      call = { outputIndex: this.output.length + this.calls.length, id: randomId("fc"), callId: randomId("call"), name: name ?? "", args: "" };
      this.calls[index] = call;
      this.send("response.output_item.added", { output_index: call.outputIndex, item: callItem(call.id, call.callId, call.name, "", "in_progress") });
    }
    if (args.length === 0) return;
    call.args += args;
    this.send("response.function_call_arguments.delta", { item_id: call.id, output_index: call.outputIndex, delta: args });
  }

  /** Ends every item (the calls with the arguments the model wrote, as the unstreamed answer has them); the output. */
  finish(outcome: JobOutcome, cut: boolean): OutputItem[] {
    const status = cut ? "incomplete" : "completed";
    const { text, toolCalls } = outcome.result;
    // An answer with neither text nor calls still has its (empty) message, as unstreamed.
    if (this.open === undefined && text === "" && toolCalls === undefined && this.calls.length === 0 && !this.output.some((item) => item.type === "message")) this.ensureOpen("message");
    this.close(status);
    const final = toolCalls ?? [];
    for (const [index, call] of final.entries()) {
      const streamed = this.calls[index];
      const args = callArguments(call);
      if (streamed === undefined) {
        const outputIndex = this.output.length;
        const item = { id: randomId("fc"), callId: randomId("call") };
        this.send("response.output_item.added", { output_index: outputIndex, item: callItem(item.id, item.callId, call.name, "", "in_progress") });
        this.send("response.function_call_arguments.delta", { item_id: item.id, output_index: outputIndex, delta: args });
        this.endCall(outputIndex, callItem(item.id, item.callId, call.name, args, status));
      } else {
        this.endCall(streamed.outputIndex, callItem(streamed.id, streamed.callId, call.name, args, status));
      }
    }
    // Streamed calls the final answer does not have (cut short before their name was whole) end as they are.
    for (const streamed of this.calls.slice(final.length)) this.endCall(streamed.outputIndex, callItem(streamed.id, streamed.callId, streamed.name, streamed.args, status));
    return this.output;
  }

  private endCall(outputIndex: number, item: OutputItem): void {
    this.send("response.function_call_arguments.done", { item_id: item.id, output_index: outputIndex, name: item.name, arguments: item.arguments });
    this.send("response.output_item.done", { output_index: outputIndex, item });
    this.output[outputIndex] = item;
  }

  private ensureOpen(kind: "reasoning" | "message"): void {
    if (this.open?.kind === kind) return;
    this.close("completed");
    this.open = { kind, id: randomId(kind === "message" ? "msg" : "rs"), text: "", logprobs: [] };
    const outputIndex = this.output.length;
    if (kind === "message") {
      this.send("response.output_item.added", { output_index: outputIndex, item: { id: this.open.id, type: "message", status: "in_progress", role: "assistant", content: [] } });
      this.send("response.content_part.added", { item_id: this.open.id, output_index: outputIndex, content_index: 0, part: { type: "output_text", text: "", annotations: [], logprobs: [] } });
    } else {
      this.send("response.output_item.added", { output_index: outputIndex, item: { id: this.open.id, type: "reasoning", summary: [], content: [] } });
      this.send("response.content_part.added", { item_id: this.open.id, output_index: outputIndex, content_index: 0, part: { type: "reasoning_text", text: "" } });
    }
  }

  private close(status: string): void {
    const open = this.open;
    if (open === undefined) return;
    this.open = undefined;
    const outputIndex = this.output.length;
    const item = open.kind === "message" ? messageItem(open.id, open.text, status, open.logprobs) : reasoningItem(open.id, open.text, this.thoughtsCopied);
    const part = (item.content as object[])[0]!;
    if (open.kind === "message") this.send("response.output_text.done", { item_id: open.id, output_index: outputIndex, content_index: 0, text: open.text, logprobs: open.logprobs });
    else this.send("response.reasoning_text.done", { item_id: open.id, output_index: outputIndex, content_index: 0, text: open.text });
    this.send("response.content_part.done", { item_id: open.id, output_index: outputIndex, content_index: 0, part });
    this.send("response.output_item.done", { output_index: outputIndex, item });
    this.output.push(item);
  }
}
