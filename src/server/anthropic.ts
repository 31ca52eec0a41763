import type { IncomingMessage, ServerResponse } from "node:http";
import { linkToolResults } from "../engine/conversation.js";
import { forcedCallReader } from "../engine/toolChoice.js";
import type { ChatMessage, ThinkSetting, ToolChoice, ToolDefinition } from "../engine/types.js";
import { Fields, readSampling } from "./fields.js";
import { badRequest, clientGone, HttpError, randomId, sendJson, streamAnswer, StreamWriter } from "./http.js";
import { bodyWithModel, type AdapterContext } from "./openai.js";
import type { Job, JobOutcome } from "./service.js";

/**
 * Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens), as ollama, llama-server and
 * LM Studio offer it, so that clients written for Claude (its SDKs, Claude Code with ANTHROPIC_BASE_URL)
 * run on local models. Text, thinking blocks, tool use and tool results, stop sequences; streamed as
 * Anthropic's events (message_start, content blocks, message_delta, message_stop). Errors in its shape.
 */

const MAX_MESSAGES = 10_000;

/** Anthropic's error types by status. */
function errorType(error: HttpError): string {
  switch (error.status) {
    case 400:
    case 405:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 503:
      return "overloaded_error";
    case 504:
      return "timeout_error";
    default:
      return "api_error";
  }
}

export function anthropicError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, { type: "error", error: { type: errorType(error), message: error.message } }, error.details.headers ?? {});
}

/** Text blocks (or a string) as one text; `path` names the field in errors. */
function blocksText(value: unknown, holder: Fields, field: string, path: string): string {
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) throw badRequest(`"${path}" must be a string or an array of content blocks`, path);
  return value
    .map((_, index) => {
      const block = holder.item(field, value, index);
      const type = block.string("type", { required: true });
      if (type === "text") return block.string("text", { required: true })!;
      if (type === "image" || type === "document") throw badRequest(`${type} blocks are not supported: lmrun serves text-only models`, `${path}[${index}]`);
      throw badRequest(`"${path}[${index}].type" ${JSON.stringify(type)} is not supported here (text blocks)`, `${path}[${index}].type`);
    })
    .join("\n");
}

/** `system` and `messages` (text, thinking, tool_use and tool_result blocks) as chat messages. */
function conversationOf(f: Fields): ChatMessage[] {
  const messages: ChatMessage[] = [];
  const system = f.raw("system");
  if (system !== undefined && system !== null) {
    const text = blocksText(system, f, "system", "system");
    if (text.trim() !== "") messages.push({ role: "system", text });
  }
  const items = f.array("messages", { required: true, maxItems: MAX_MESSAGES })!;
  if (items.length === 0) throw badRequest('"messages" must not be empty', "messages");
  items.forEach((_, index) => {
    const m = f.item("messages", items, index);
    const at = `messages[${index}]`;
    const role = m.string("role", { required: true });
    // Claude Code sends system text as messages between the turns too (reminders, context).
    if (role === "system") {
      messages.push({ role: "system", text: blocksText(m.raw("content"), m, "content", `${at}.content`) });
      return;
    }
    if (role !== "user" && role !== "assistant") throw badRequest(`"${at}.role" must be user, assistant or system (got ${JSON.stringify(role)})`, `${at}.role`);
    const content = m.raw("content");
    if (typeof content === "string") {
      messages.push({ role, text: content });
      return;
    }
    if (!Array.isArray(content)) throw badRequest(`"${at}.content" must be a string or an array of content blocks`, `${at}.content`);
    const texts: string[] = [];
    let toolResults = 0;
    let thinking: string | undefined;
    const toolCalls: NonNullable<ChatMessage["toolCalls"]> = [];
    content.forEach((__, blockIndex) => {
      const block = m.item("content", content, blockIndex);
      const blockAt = `${at}.content[${blockIndex}]`;
      const type = block.string("type", { required: true });
      if (type === "text") texts.push(block.string("text", { required: true })!);
      else if (type === "thinking" && role === "assistant") thinking = (thinking ?? "") + (block.string("thinking") ?? "");
      // Thoughts Anthropic kept encrypted, and the traces of its server tools in an earlier answer, mean nothing here.
      else if (type === "redacted_thinking" || type === "server_tool_use" || type === "mcp_tool_use" || (type?.endsWith("_tool_result") && type !== "tool_result")) return;
      else if (type === "tool_use" && role === "assistant") {
        const input = block.raw("input");
        toolCalls.push({ id: block.string("id", { required: true })!, name: block.string("name", { required: true })!, arguments: input ?? {} });
      } else if (type === "tool_result" && role === "user") {
        // Tool results come before the user's own text in the same turn, as tool messages.
        const result = block.raw("content");
        const text = result === undefined || result === null ? "" : blocksText(result, block, "content", `${blockAt}.content`);
        toolResults++;
        messages.push({ role: "tool", text: block.boolean("is_error") === true ? `Error: ${text}` : text, toolCallId: block.string("tool_use_id", { required: true })! });
      } else if (type === "image" || type === "document") {
        throw badRequest(`${type} blocks are not supported: lmrun serves text-only models`, blockAt);
      } else {
        throw badRequest(`"${blockAt}.type" ${JSON.stringify(type)} is not supported in a ${role} message`, `${blockAt}.type`);
      }
    });
    const text = texts.join("\n");
    if (role === "assistant") messages.push({ role, text, ...(thinking !== undefined ? { thinking } : {}), ...(toolCalls.length > 0 ? { toolCalls } : {}) });
    // A turn of tool results alone is those results; text beside them is the user's next message.
    else if (text !== "" || toolResults === 0) messages.push({ role, text });
  });
  const { orphan } = linkToolResults(messages);
  if (orphan !== undefined) throw badRequest("a tool_result block answers no tool_use block of an earlier assistant message", "messages");
  return messages;
}

/**
 * Client tools (`name`, `description`, `input_schema`). Anthropic's own server tools (web_search_…,
 * code_execution_…) run on its servers: they are left out, as the Responses API's hosted tools are, so
 * a client that declares one beside its own still works.
 */
function toolsOf(f: Fields): ToolDefinition[] | undefined {
  if (f.object("tool_choice")?.string("type") === "none") return undefined;
  const items = f.array("tools", { maxItems: 128 });
  if (!items || items.length === 0) return undefined;
  const tools = items.flatMap((_, index) => {
    const tool = f.item("tools", items, index);
    const type = tool.string("type");
    if (type !== undefined && type !== "custom") return [];
    const name = tool.string("name", { required: true, maxLength: 64 })!;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw badRequest(`"tools[${index}].name" may hold letters, digits, _ and - only`, `tools[${index}].name`);
    return [{ name, description: tool.string("description"), parameters: tool.object("input_schema") ? (tool.raw("input_schema") as object) : undefined }];
  });
  return tools.length > 0 ? tools : undefined;
}

/** tool_choice: auto, any (a call, as OpenAI's required), tool (that one), none (no tools). */
function toolChoiceOf(f: Fields, tools: ToolDefinition[] | undefined): ToolChoice | undefined {
  const choice = f.object("tool_choice");
  if (!choice) return undefined;
  const type = choice.string("type", { required: true });
  const parallel = choice.boolean("disable_parallel_tool_use") !== true;
  if (type === "auto" || type === "none") return undefined;
  if (type === "any") {
    if (!tools) throw badRequest('"tool_choice" "any" needs "tools"', "tool_choice");
    return { kind: "required", parallel };
  }
  if (type === "tool") {
    const name = choice.string("name", { required: true })!;
    if (!tools?.some((t) => t.name === name)) throw badRequest(`"tool_choice" names ${JSON.stringify(name)}, which is not among "tools"`, "tool_choice.name");
    return { kind: "function", name };
  }
  throw badRequest('"tool_choice.type" must be auto, any, tool or none', "tool_choice.type");
}

const EFFORTS = ["low", "medium", "high", "max"];

/**
 * thinking: "enabled" (its budget_tokens is not enforced) or "adaptive" lets a thinking model think,
 * "disabled" turns it off; output_config.effort (low, medium, high, max) is the reasoning effort a model
 * that takes one is told (gpt-oss; max is high, as ollama reads it).
 */
function thinkOf(f: Fields): ThinkSetting | undefined {
  const thinking = f.object("thinking");
  const type = thinking?.string("type", { required: true });
  if (type !== undefined && type !== "enabled" && type !== "adaptive" && type !== "disabled") throw badRequest('"thinking.type" must be enabled, adaptive or disabled', "thinking.type");
  if (type === "disabled") return false;
  const effort = f.object("output_config")?.string("effort");
  if (effort !== undefined && !EFFORTS.includes(effort)) throw badRequest(`"output_config.effort" must be one of ${EFFORTS.join(", ")}`, "output_config.effort");
  if (effort !== undefined) return effort === "max" ? "high" : (effort as ThinkSetting);
  return type === undefined ? undefined : true;
}

function jobOf(f: Fields, model: string): Omit<Job, "signal"> {
  const messages = conversationOf(f);
  const tools = toolsOf(f);
  const toolChoice = toolChoiceOf(f, tools);
  return {
    model,
    modelParam: "model",
    prompt: "",
    messages,
    chat: true,
    truncate: false,
    maxTokens: f.number("max_tokens", { integer: true, min: 1 }),
    maxTokensParam: "max_tokens",
    // Clients send large fixed limits (Claude Code: 32000) whatever the model: generation ends where the context does.
    maxTokensPastContext: true,
    sampling: readSampling(f, 1),
    stop: f.strings("stop_sequences", { maxItems: 16 }) ?? [],
    tools,
    toolChoice,
    think: thinkOf(f),
  };
}


function stopReason(outcome: JobOutcome): { stop_reason: string; stop_sequence: string | null } {
  const { stopReason: reason, toolCalls, stopText } = outcome.result;
  if (reason === "maxTokens" || outcome.timedOut) return { stop_reason: "max_tokens", stop_sequence: null };
  if (toolCalls !== undefined) return { stop_reason: "tool_use", stop_sequence: null };
  if (reason === "stop" && stopText !== undefined) return { stop_reason: "stop_sequence", stop_sequence: stopText };
  return { stop_reason: "end_turn", stop_sequence: null };
}

/** Anthropic counts the prompt's tokens read from a cache apart from the others. */
function usageOf(prompt: { tokens: number; cached: number }, outputTokens: number) {
  return { input_tokens: prompt.tokens - prompt.cached, cache_creation_input_tokens: 0, cache_read_input_tokens: prompt.cached, output_tokens: outputTokens };
}

/** A call's arguments as Anthropic's `input`: an object (a call cut short before its JSON closed has none). */
function callInput(call: NonNullable<JobOutcome["result"]["toolCalls"]>[number]): object {
  return typeof call.arguments === "object" && call.arguments !== null && !Array.isArray(call.arguments) ? call.arguments : {};
}

export async function messages(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { f, model } = await bodyWithModel(ctx, req);
  const job = jobOf(f, model);
  const stream = f.boolean("stream") === true;
  const id = randomId("msg");
  const modelName = ctx.service.model(model, "model").name;
  const signal = clientGone(res);
  if (!stream) {
    const outcome = await ctx.service.run({ ...job, signal });
    const { promptTokens, generatedTokens, cachedPromptTokens, text, thinking, toolCalls } = outcome.result;
    ctx.note({ promptTokens, generatedTokens });
    const content: object[] = [];
    if (thinking !== undefined) content.push({ type: "thinking", thinking, signature: "" });
    if (text !== "" || toolCalls === undefined) content.push({ type: "text", text });
    for (const call of toolCalls ?? []) content.push({ type: "tool_use", id: randomId("toolu"), name: call.name, input: callInput(call) });
    sendJson(res, 200, { id, type: "message", role: "assistant", model: modelName, content, ...stopReason(outcome), usage: usageOf({ tokens: promptTokens, cached: cachedPromptTokens }, generatedTokens) });
    return;
  }

  const writer = new StreamWriter(res, "text/event-stream; charset=utf-8");
  const eventText = (type: string, fields: object = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`;
  const send = (type: string, fields: object = {}) => writer.send(eventText(type, fields));
  let prompt = { tokens: 0, cached: 0 };
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    send("message_start", { message: { id, type: "message", role: "assistant", model: modelName, content: [], stop_reason: null, stop_sequence: null, usage: usageOf(prompt, 0) } });
  };
  const blocks = new ContentBlocks(send);
  const readCall = job.toolChoice !== undefined && job.toolChoice !== "auto" ? forcedCallReader(job.toolChoice) : undefined;
  await streamAnswer(
    writer,
    // Anthropic's keep-alive is a ping event (its SDKs skip it).
    { text: eventText("ping"), ms: ctx.pingMs },
    () =>
      ctx.service.run({
        ...job,
        signal,
        onStart: (taken) => {
          prompt = taken;
          start();
        },
        onThought: (text) => {
          start();
          if (text.length > 0) blocks.delta("thinking", text);
        },
        onText: (text) => {
          start();
          if (text.length > 0) blocks.delta("text", text);
        },
        ...(readCall !== undefined
          ? {
              onCallArguments: (text: string) => {
                start();
                for (const piece of readCall(text)) blocks.call(piece.index, "name" in piece ? piece.name : undefined, "name" in piece ? "" : piece.arguments);
              },
            }
          : {}),
      }),
    (outcome) => {
      const { promptTokens, generatedTokens, cachedPromptTokens, toolCalls } = outcome.result;
      ctx.note({ promptTokens, generatedTokens });
      start();
      blocks.finish(toolCalls ?? []);
      send("message_delta", { delta: stopReason(outcome), usage: usageOf({ tokens: promptTokens, cached: cachedPromptTokens }, generatedTokens) });
      send("message_stop");
    },
    // Headers are out: Anthropic's `error` event (its SDKs throw it).
    (e) => eventText("error", { error: { type: errorType(e), message: e.message } }),
  );
}

/**
 * A streamed message's content blocks, as Anthropic sends them: each starts, takes deltas and stops
 * before the next starts (thinking, then text, then tool_use blocks, whose input streams as JSON pieces).
 */
class ContentBlocks {
  private index = -1;
  private open: "thinking" | "text" | undefined;
  /** Calls streamed as they are generated (forced ones): their block index, by call index. */
  private readonly calls: number[] = [];
  /** The streamed call whose block is open. */
  private openCall: number | undefined;

  constructor(private readonly send: (type: string, fields?: object) => void) {}

  delta(kind: "thinking" | "text", text: string): void {
    if (this.open !== kind) {
      this.stop();
      this.open = kind;
      this.index++;
      this.send("content_block_start", { index: this.index, content_block: kind === "text" ? { type: "text", text: "" } : { type: "thinking", thinking: "", signature: "" } });
    }
    this.send("content_block_delta", { index: this.index, delta: kind === "text" ? { type: "text_delta", text } : { type: "thinking_delta", thinking: text } });
  }

  /** A piece of a streamed call: its name when it starts, then its input's JSON. */
  call(callIndex: number, name: string | undefined, json: string): void {
    if (this.calls[callIndex] === undefined) {
      this.stop();
      if (this.openCall !== undefined) this.send("content_block_stop", { index: this.openCall });
      this.index++;
      this.openCall = this.index;
      this.calls[callIndex] = this.index;
      this.send("content_block_start", { index: this.index, content_block: { type: "tool_use", id: randomId("toolu"), name: name ?? "", input: {} } });
    }
    if (json.length > 0) this.send("content_block_delta", { index: this.calls[callIndex], delta: { type: "input_json_delta", partial_json: json } });
  }

  /** Ends the open block; calls not streamed (the model's own choice to call) come whole, each a block. */
  finish(toolCalls: NonNullable<JobOutcome["result"]["toolCalls"]>): void {
    // A message with no block at all still has its (empty) text block, as the whole answer has.
    if (this.index < 0 && toolCalls.length === 0) this.delta("text", "");
    this.stop();
    if (this.openCall !== undefined) {
      this.send("content_block_stop", { index: this.openCall });
      return;
    }
    for (const call of toolCalls) {
      this.index++;
      this.send("content_block_start", { index: this.index, content_block: { type: "tool_use", id: randomId("toolu"), name: call.name, input: {} } });
      this.send("content_block_delta", { index: this.index, delta: { type: "input_json_delta", partial_json: JSON.stringify(callInput(call)) } });
      this.send("content_block_stop", { index: this.index });
    }
  }

  private stop(): void {
    if (this.open === undefined) return;
    this.send("content_block_stop", { index: this.index });
    this.open = undefined;
  }
}

/** POST /v1/messages/count_tokens: the prompt's tokens as the model would see them (template, tools, thinking setting). */
export async function countTokens(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { f, model } = await bodyWithModel(ctx, req);
  const job = jobOf(f, model);
  const tokens = await ctx.service.countPromptTokens(job);
  ctx.note({ promptTokens: tokens });
  sendJson(res, 200, { input_tokens: tokens });
}
