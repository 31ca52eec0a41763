import type { IncomingMessage, ServerResponse } from "node:http";
import { linkToolResults } from "../engine/conversation.js";
import { forcedCallReader } from "../engine/toolChoice.js";
import type { ChatMessage, ThinkSetting, TokenLogprob, ToolChoice, ToolDefinition } from "../engine/types.js";
import { Fields, readSampling } from "./fields.js";
import { badRequest, clientGone, HttpError, randomId, readJsonBody, sendJson, streamAnswer, StreamWriter } from "./http.js";
import { completionLogprobs, readCompletionLogprobs, readLogprobs, tokenLogprobs } from "./logprobs.js";
import type { Job, JobOutcome, Service } from "./service.js";

/** What a slot's start tells a stream of its prompt (Job's onStart). */
type StartedPrompt = Parameters<NonNullable<Job["onStart"]>>[0];

/**
 * OpenAI's API: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models (/v1/responses: responses.ts).
 * Unsupported requests (n > 1, image parts) are refused with a 400 that says so.
 */

export interface AdapterContext {
  service: Service;
  bodyLimit: number;
  pingMs: number;
  /** For the access log: what the request used. */
  note(fields: { model?: string; promptTokens?: number; generatedTokens?: number }): void;
}

const MAX_MESSAGES = 10_000;

/** The body as Fields and its required `model`, noted for the access log. */
export async function bodyWithModel(ctx: AdapterContext, req: IncomingMessage): Promise<{ f: Fields; model: string }> {
  const f = new Fields(await readJsonBody(req, ctx.bodyLimit));
  const model = f.string("model", { required: true })!;
  if (model === "") throw badRequest('"model" is required', "model");
  ctx.note({ model });
  return { f, model };
}

export function openAiError(res: ServerResponse, error: HttpError): void {
  const body = { error: { message: error.message, type: error.details.type ?? "invalid_request_error", param: error.details.param ?? null, code: error.details.code ?? null } };
  sendJson(res, error.status, body, error.details.headers ?? {});
}

export async function listModels(ctx: AdapterContext, res: ServerResponse): Promise<void> {
  const data = ctx.service.options.names.list().map((m) => ({ id: m.name, object: "model", created: Math.floor(Date.parse(m.modifiedAt) / 1000) || 0, owned_by: "lmrun" }));
  sendJson(res, 200, { object: "list", data });
}

/** Sampling fields shared by chat and completions. */
function samplingJob(f: Fields, options: { maxTokensMin?: number } = {}): Pick<Job, "maxTokens" | "maxTokensParam" | "sampling" | "stop"> {
  if ((f.number("n", { integer: true, min: 1 }) ?? 1) > 1) throw badRequest('"n" > 1 is not supported: ask for one choice per request', "n");
  if ((f.number("best_of", { integer: true, min: 1 }) ?? 1) > 1) throw badRequest('"best_of" > 1 is not supported: ask for one choice per request', "best_of");
  const min = options.maxTokensMin ?? 1;
  const maxCompletion = f.number("max_completion_tokens", { integer: true, min });
  const maxTokens = maxCompletion ?? f.number("max_tokens", { integer: true, min });
  return {
    maxTokens,
    maxTokensParam: maxCompletion !== undefined ? "max_completion_tokens" : "max_tokens",
    sampling: readSampling(f, 2),
    stop: f.strings("stop", { maxItems: 16 }) ?? [],
  };
}

function jsonSchemaOf(f: Fields): Job["jsonSchema"] {
  const format = f.object("response_format");
  if (!format) return undefined;
  const type = format.string("type", { required: true });
  if (type === "text") return undefined;
  if (type === "json_object") return "json";
  if (type === "json_schema") {
    const spec = format.object("json_schema");
    const schema = spec?.raw("schema");
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw badRequest('"response_format.json_schema.schema" must be a JSON schema object', "response_format.json_schema.schema");
    return schema;
  }
  throw badRequest(`"response_format.type" must be text, json_object or json_schema (got ${JSON.stringify(type)})`, "response_format.type");
}

function contentText(m: Fields, at: string): string {
  const content = m.raw("content");
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw badRequest(`"${at}.content" must be a string or an array of parts`, `${at}.content`);
  return content
    .map((part, index) => {
      const p = m.item("content", content, index);
      const type = p.string("type", { required: true });
      if (type === "text") return p.string("text", { required: true })!;
      if (type === "image_url" || type === "input_image" || type === "image") throw badRequest("image parts are not supported: lmrun serves text-only models", `${at}.content[${index}]`);
      throw badRequest(`"${at}.content[${index}].type" ${JSON.stringify(type)} is not supported (text parts only)`, `${at}.content[${index}].type`);
    })
    .join("\n");
}

function messagesOf(f: Fields): ChatMessage[] {
  const items = f.array("messages", { required: true, maxItems: MAX_MESSAGES })!;
  if (items.length === 0) throw badRequest('"messages" must not be empty', "messages");
  return items.map((_, index) => {
    const m = f.item("messages", items, index);
    const at = `messages[${index}]`;
    const role = m.string("role", { required: true });
    const text = contentText(m, at);
    if (role === "system" || role === "developer") return { role: "system", text };
    if (role === "user") return { role: "user", text };
    if (role === "tool") return { role: "tool", text, toolCallId: m.string("tool_call_id") };
    if (role === "assistant") {
      const calls = m.array("tool_calls") ?? [];
      const toolCalls = calls.map((_c, i) => {
        const call = m.item("tool_calls", calls, i);
        const fn = call.object("function");
        const name = fn?.string("name", { required: true }) ?? "";
        const args = fn?.string("arguments") ?? "{}";
        let parsed: unknown;
        try {
          parsed = JSON.parse(args);
        } catch {
          parsed = args; // an opaque string to OpenAI: a model's malformed call replays as it was
        }
        return { id: call.string("id") ?? `call_${i}`, name, arguments: parsed };
      });
      // Thoughts sent back (llama-server's and ollama's names for them) go back into the prompt where the template shows them.
      const thinking = m.string("reasoning_content") ?? m.string("reasoning");
      return { role: "assistant", text, ...(thinking ? { thinking } : {}), ...(toolCalls.length > 0 ? { toolCalls } : {}) };
    }
    throw badRequest(`"${at}.role" must be system, developer, user, assistant or tool (got ${JSON.stringify(role)})`, `${at}.role`);
  });
}

/** A tool message must answer a call of an earlier assistant message (OpenAI's 400), not vanish from the prompt. */
export function checkToolResults(messages: ChatMessage[]): void {
  const { orphan } = linkToolResults(messages);
  if (orphan === undefined) return;
  const at = `messages[${orphan}]`;
  throw badRequest(`"${at}" is a tool result, but no earlier assistant message has a tool call it answers`, messages[orphan]!.toolCallId !== undefined ? `${at}.tool_call_id` : at);
}

function toolsOf(f: Fields): ToolDefinition[] | undefined {
  const choice = f.raw("tool_choice");
  if (choice === "none") return undefined;
  const items = f.array("tools", { maxItems: 128 });
  if (!items || items.length === 0) return undefined;
  return items.map((_, index) => {
    const tool = f.item("tools", items, index);
    const type = tool.string("type") ?? "function";
    if (type !== "function") throw badRequest(`"tools[${index}].type" must be function`, `tools[${index}].type`);
    const fn = tool.object("function");
    if (!fn) throw badRequest(`"tools[${index}].function" is required`, `tools[${index}].function`);
    const name = fn.string("name", { required: true, maxLength: 64 })!;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw badRequest(`"tools[${index}].function.name" may hold letters, digits, _ and - only`, `tools[${index}].function.name`);
    const parameters = fn.object("parameters") ? (fn.raw("parameters") as object) : undefined;
    return { name, description: fn.string("description"), parameters };
  });
}

/**
 * tool_choice: "none" (the tools are dropped), "auto", "required" or a named function; the last two
 * force a call (engine/toolChoice.ts). Checked against the tools, as OpenAI does.
 */
export function toolChoiceOf(f: Fields, tools: ToolDefinition[] | undefined): ToolChoice | undefined {
  const choice = f.raw("tool_choice");
  if (choice === undefined || choice === null || choice === "none" || choice === "auto") return undefined;
  const parallel = f.boolean("parallel_tool_calls") !== false;
  if (choice === "required") {
    if (!tools) throw badRequest('"tool_choice" "required" needs "tools"', "tool_choice");
    return { kind: "required", parallel };
  }
  if (typeof choice === "object" && !Array.isArray(choice)) {
    const named = f.object("tool_choice")!;
    if ((named.string("type") ?? "function") !== "function") throw badRequest('"tool_choice.type" must be function', "tool_choice.type");
    // Chat completions name it in `function`, the Responses API beside the type.
    const name = named.object("function")?.string("name", { required: true }) ?? named.string("name");
    if (name === undefined) throw badRequest('"tool_choice.function.name" is required', "tool_choice.function.name");
    if (!tools?.some((t) => t.name === name)) throw badRequest(`"tool_choice" names ${JSON.stringify(name)}, which is not among "tools"`, "tool_choice.function.name");
    return { kind: "function", name };
  }
  throw badRequest('"tool_choice" must be none, auto, required or {"type": "function", "function": {"name": ...}}', "tool_choice");
}

const REASONING_EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh", "ultra", "max"];

/**
 * Thinking off, as llama-server and vLLM take it (`chat_template_kwargs.enable_thinking: false`) or as
 * OpenAI and ollama do (`reasoning_effort: "none"`, `reasoning: {"effort": "none"}`); any other effort is
 * told to a model that takes one (gpt-oss: minimal is low, past high is high) and leaves the others to
 * think as they were made to.
 */
export function thinkOf(f: Fields): ThinkSetting | undefined {
  const enable = f.object("chat_template_kwargs")?.boolean("enable_thinking");
  if (enable !== undefined) return enable;
  const reasoning = f.object("reasoning");
  // OpenRouter's switch.
  const enabled = reasoning?.boolean("enabled");
  if (enabled !== undefined) return enabled;
  const effort = reasoning ? reasoning.string("effort") : f.string("reasoning_effort");
  if (effort === undefined) return undefined;
  const param = reasoning ? "reasoning.effort" : "reasoning_effort";
  if (!REASONING_EFFORTS.includes(effort)) throw badRequest(`"${param}" must be one of ${REASONING_EFFORTS.join(", ")}`, param);
  if (effort === "none") return false;
  return effort === "minimal" || effort === "low" ? "low" : effort === "medium" ? "medium" : "high";
}

function finishReason(outcome: JobOutcome): "stop" | "length" | "tool_calls" {
  // A call cut short by max tokens (a forced one keeps its partial arguments) ends as OpenAI's does: length.
  if (outcome.result.stopReason === "maxTokens" || outcome.timedOut) return "length";
  if (outcome.result.toolCalls !== undefined) return "tool_calls";
  return "stop";
}

function usageOf(outcome: JobOutcome) {
  const { promptTokens, generatedTokens, cachedPromptTokens, thinkingTokens } = outcome.result;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: generatedTokens,
    total_tokens: promptTokens + generatedTokens,
    prompt_tokens_details: { cached_tokens: cachedPromptTokens },
    ...(thinkingTokens !== undefined ? { completion_tokens_details: { reasoning_tokens: thinkingTokens } } : {}),
  };
}

function callId(): string {
  return randomId("call", 8);
}

function toolCallsOf(outcome: JobOutcome) {
  return outcome.result.toolCalls?.map((call, index) => ({
    index,
    id: callId(),
    type: "function" as const,
    function: { name: call.name, arguments: call.argumentsText ?? JSON.stringify(call.arguments ?? {}) },
  }));
}

export async function chatCompletions(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { f, model } = await bodyWithModel(ctx, req);
  const messages = messagesOf(f);
  checkToolResults(messages);
  const tools = toolsOf(f);
  const toolChoice = toolChoiceOf(f, tools);
  const jsonSchema = jsonSchemaOf(f);
  if (tools && jsonSchema !== undefined) throw badRequest("tools and response_format json cannot be combined", "response_format");
  const stream = f.boolean("stream") === true;
  const includeUsage = f.object("stream_options")?.boolean("include_usage") === true;
  const job = { model, modelParam: "model", prompt: "", messages, chat: true, truncate: false, ...samplingJob(f), jsonSchema, tools, toolChoice, think: thinkOf(f), logprobs: readLogprobs(f, "openai") };
  // A forced call streams as OpenAI streams calls: the id and name, then the arguments in pieces.
  const forced = toolChoice !== undefined && toolChoice !== "auto" ? toolChoice : undefined;
  const streamedCalls: string[] = [];
  const readCall = forced !== undefined ? forcedCallReader(forced) : undefined;
  const callDelta = (index: number, name: string | undefined, args: string) => {
    const started = streamedCalls[index] === undefined;
    if (started) streamedCalls[index] = callId();
    return { index, ...(started ? { id: streamedCalls[index], type: "function" } : {}), function: { ...(started ? { name } : {}), arguments: args } };
  };
  await respond(ctx, res, job, stream, {
    object: "chat.completion",
    idPrefix: "chatcmpl",
    includeUsage,
    first: () => ({ delta: { role: "assistant", content: "" } }),
    piece: (text) => ({ delta: { content: text } }),
    logprobs: (tokens) => ({ content: tokenLogprobs(tokens), refusal: null }),
    // A thinking model's thoughts: `reasoning_content` as llama-server, vLLM and DeepSeek's API name
    // them, and `reasoning` as ollama and OpenRouter do; clients read one or the other.
    thought: (text) => ({ delta: { reasoning_content: text, reasoning: text } }),
    ...(readCall !== undefined
      ? {
          callArguments: (text: string) => {
            const deltas: Array<ReturnType<typeof callDelta>> = [];
            for (const piece of readCall(text)) {
              const last = deltas.at(-1);
              // A call's name and its first arguments in one push are one delta.
              if ("name" in piece) deltas.push(callDelta(piece.index, piece.name, ""));
              else if (last?.index === piece.index) last.function.arguments += piece.arguments;
              else deltas.push(callDelta(piece.index, undefined, piece.arguments));
            }
            return deltas.length > 0 ? { delta: { tool_calls: deltas } } : undefined;
          },
        }
      : {}),
    last: (outcome) => {
      const calls = streamedCalls.length === 0 ? toolCallsOf(outcome) : undefined;
      return { delta: calls ? { tool_calls: calls } : {} };
    },
    whole: (outcome) => {
      const calls = toolCallsOf(outcome)?.map(({ index: _index, ...call }) => call);
      // OpenAI's content is null beside tool calls when the model said nothing else.
      const { thinking } = outcome.result;
      return {
        message: {
          role: "assistant",
          content: calls && outcome.result.text === "" ? null : outcome.result.text,
          ...(thinking !== undefined ? { reasoning_content: thinking, reasoning: thinking } : {}),
          ...(calls ? { tool_calls: calls } : {}),
        },
      };
    },
  });
}

/** The most prompts one completions request may carry (each is a choice; they share the model's slots). */
const MAX_PROMPTS = 64;

type CompletionPrompt = { text: string; ids?: undefined } | { ids: number[]; text?: undefined };

/** A completions request's prompts: a text, token ids, or a list of either (one choice each). */
function completionPrompts(raw: unknown): CompletionPrompt[] {
  const isIds = (value: unknown): value is number[] => Array.isArray(value) && value.length > 0 && value.every((t) => typeof t === "number");
  if (typeof raw === "string") return [{ text: raw }];
  if (isIds(raw)) return [{ ids: raw }];
  if (Array.isArray(raw) && raw.length > 0 && raw.length <= MAX_PROMPTS) {
    if (raw.every((p) => typeof p === "string")) return raw.map((text: string) => ({ text }));
    if (raw.every(isIds)) return raw.map((ids) => ({ ids }));
  }
  if (Array.isArray(raw) && raw.length > MAX_PROMPTS) throw badRequest(`"prompt" has ${raw.length} prompts: at most ${MAX_PROMPTS} go in one request`, "prompt");
  throw badRequest('"prompt" must be a string, an array of token ids, or a list of either', "prompt");
}

export async function completions(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { f, model } = await bodyWithModel(ctx, req);
  const prompts = completionPrompts(f.raw("prompt"));
  // Fill in the middle (code models): the answer is what goes between the prompt and the suffix.
  const suffix = f.string("suffix") || undefined;
  const echo = f.boolean("echo") === true;
  const stream = f.boolean("stream") === true;
  const includeUsage = f.object("stream_options")?.boolean("include_usage") === true;
  const logprobs = readCompletionLogprobs(f);
  // With echo, max_tokens 0 asks for the prompt alone (scored, with logprobs), as OpenAI's legacy completions allow.
  const sampling = samplingJob(f, { maxTokensMin: echo ? 0 : 1 });
  const promptLogprobs = echo && logprobs !== undefined ? logprobs : undefined;
  if (suffix !== undefined && prompts.some((p) => p.ids !== undefined)) throw badRequest('"suffix" needs the prompt as text, not token ids', "suffix");
  if (suffix !== undefined && promptLogprobs !== undefined) throw badRequest('"echo" with "logprobs" scores a plain prompt: leave out "suffix"', "echo");
  if (stream && prompts.length > 1) throw badRequest('several prompts are answered together, not streamed: send "stream": false, or one prompt per request', "stream");
  const jsonSchema = jsonSchemaOf(f);
  const jobOf = (prompt: CompletionPrompt) => ({
    model,
    modelParam: "model",
    prompt: prompt.text ?? "",
    ...(prompt.ids !== undefined ? { promptTokenIds: prompt.ids } : {}),
    ...(promptLogprobs !== undefined ? { promptLogprobs } : {}),
    suffix,
    chat: false,
    truncate: false,
    ...sampling,
    jsonSchema,
    logprobs,
  });
  const echoed = (prompt: CompletionPrompt, outcome: JobOutcome) => (echo ? (prompt.text ?? outcome.result.promptText ?? "") : "");
  if (prompts.length > 1) return completeSeveral(ctx, res, prompts.map(jobOf), (index, outcome) => {
    const prompt = echoed(prompts[index]!, outcome);
    return {
      text: prompt + outcome.result.text,
      logprobs: logprobs !== undefined ? completionLogprobs(outcome.result.logprobs ?? [], prompt.length, outcome.result.promptLogprobs) : null,
    };
  });
  const prompt = prompts[0]!;
  // What a stream's echo showed first (a token-id prompt's text comes with the slot's start).
  let streamedEcho = prompt.text ?? "";
  await respond(ctx, res, jobOf(prompt), stream, {
    object: "text_completion",
    idPrefix: "cmpl",
    includeUsage,
    // echo: the prompt (with logprobs, its own tokens scored), then its completion (OpenAI's legacy completions).
    first: echo
      ? (started) => {
          streamedEcho = prompt.text ?? started?.promptText ?? "";
          return { text: streamedEcho, ...(started?.promptLogprobs !== undefined ? { logprobs: completionLogprobs([], 0, started.promptLogprobs) } : {}) };
        }
      : undefined,
    piece: (text) => ({ text }),
    // Offsets count from the start of the choice's text, the echoed prompt included.
    logprobs: (tokens, offset, outcome) =>
      completionLogprobs(tokens, (outcome ? echoed(prompt, outcome) : echo ? streamedEcho : "").length + offset, outcome?.result.promptLogprobs),
    last: () => ({ text: "" }),
    whole: (outcome) => ({ text: echoed(prompt, outcome) + outcome.result.text }),
  });
}

/**
 * Several prompts in one completions request: one choice each, in order, generated side by side on the model's
 * slots (as many at once as it has, so that one request does not fill the queue by itself).
 */
async function completeSeveral(
  ctx: AdapterContext,
  res: ServerResponse,
  jobs: Array<Omit<Job, "signal">>,
  choiceOf: (index: number, outcome: JobOutcome) => { text: string; logprobs: object | null },
): Promise<void> {
  // One prompt failing (a bad token id, a full queue) ends the others: the request's answer is that error.
  const failed = new AbortController();
  const signal = AbortSignal.any([clientGone(res), failed.signal]);
  const id = randomId("cmpl", 12, "-");
  const created = Math.floor(Date.now() / 1000);
  const served = ctx.service.model(jobs[0]!.model, "model");
  const outcomes: JobOutcome[] = new Array(jobs.length);
  let firstError: { error: unknown } | undefined;
  let next = 0;
  const worker = async () => {
    while (next < jobs.length && !signal.aborted) {
      const index = next++;
      outcomes[index] = await ctx.service.run({ ...jobs[index]!, signal }).catch((error: unknown) => {
        if (!failed.signal.aborted) firstError = { error };
        failed.abort();
        throw error;
      });
    }
  };
  const workers = Array.from({ length: Math.min(jobs.length, ctx.service.pool.slotsOf(served)) }, worker);
  await Promise.allSettled(workers);
  // The first failure is the answer (the others were ended by it).
  if (firstError !== undefined) throw firstError.error;
  // The client left between prompts: nobody to answer.
  if (signal.aborted) return;
  const promptTokens = outcomes.reduce((sum, o) => sum + o.result.promptTokens, 0);
  const generatedTokens = outcomes.reduce((sum, o) => sum + o.result.generatedTokens, 0);
  ctx.note({ promptTokens, generatedTokens });
  sendJson(res, 200, {
    id,
    object: "text_completion",
    created,
    model: served.name,
    system_fingerprint: "lmrun",
    choices: outcomes.map((outcome, index) => ({ index, ...choiceOf(index, outcome), finish_reason: finishReason(outcome) })),
    usage: { prompt_tokens: promptTokens, completion_tokens: generatedTokens, total_tokens: promptTokens + generatedTokens },
  });
}

interface Shape {
  object: "chat.completion" | "text_completion";
  idPrefix: string;
  includeUsage: boolean;
  /** The stream's first chunk, when a slot takes the request (`prompt`: what the service knows of the prompt then). */
  first: ((prompt?: StartedPrompt) => object) | undefined;
  piece(text: string): object;
  /**
   * Answer tokens' log-probabilities as the choice's `logprobs` (`offset`: where in the answer's text they start);
   * `outcome` on the whole answer only.
   */
  logprobs(tokens: readonly TokenLogprob[], offset: number, outcome?: JobOutcome): object;
  thought?(text: string): object;
  /** A forced call's JSON as generated, as stream deltas (undefined: nothing to send yet). */
  callArguments?(text: string): object | undefined;
  last(outcome: JobOutcome): object;
  whole(outcome: JobOutcome): object;
}

async function respond(ctx: AdapterContext, res: ServerResponse, job: Omit<Job, "signal" | "onText" | "onThought" | "onCallArguments" | "onStart">, stream: boolean, shape: Shape): Promise<void> {
  const signal = clientGone(res);
  const id = randomId(shape.idPrefix, 12, "-");
  // The served name in every chunk, aliases (":latest") resolved, as OpenAI reports the model that answered.
  const modelName = ctx.service.model(job.model, job.modelParam).name;
  const created = Math.floor(Date.now() / 1000);
  const chunkObject = shape.object === "chat.completion" ? "chat.completion.chunk" : "text_completion";
  const logprobsOf = (outcome: JobOutcome) => (job.logprobs !== undefined && outcome.result.logprobs !== undefined ? shape.logprobs(outcome.result.logprobs, 0, outcome) : null);
  if (!stream) {
    const outcome = await ctx.service.run({ ...job, signal });
    ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
    sendJson(res, 200, {
      id,
      object: shape.object,
      created,
      model: outcome.model.name,
      system_fingerprint: "lmrun",
      choices: [{ index: 0, ...shape.whole(outcome), logprobs: logprobsOf(outcome), finish_reason: finishReason(outcome) }],
      usage: usageOf(outcome),
    });
    return;
  }
  const writer = new StreamWriter(res, "text/event-stream; charset=utf-8");
  const event = (model: string, choice: object | undefined, extra: object = {}) =>
    `data: ${JSON.stringify({ id, object: chunkObject, created, model, system_fingerprint: "lmrun", choices: choice ? [{ index: 0, logprobs: null, finish_reason: null, ...choice }] : [], ...extra })}\n\n`;
  const send = (text: string) => writer.send(text);
  let sentFirst = false;
  const sendFirst = (prompt?: StartedPrompt) => {
    if (!sentFirst && shape.first) send(event(modelName, shape.first(prompt)));
    sentFirst = true;
  };
  const thought = shape.thought;
  const callArguments = shape.callArguments;
  let answerLength = 0;
  await streamAnswer(
    writer,
    // A request that waits (queue, load) gets comment lines, which SSE clients ignore.
    { text: ": ping\n\n", ms: ctx.pingMs },
    () =>
      ctx.service.run({
        ...job,
        signal,
        // The role chunk as soon as a slot takes the request (a forced tool call streams nothing else until it is whole).
        onStart: (prompt) => sendFirst(prompt),
        onText: (text, tokens) => {
          // Empty text with tokens: an end token listed with the answer's (legacy completions' logprobs).
          if (text.length === 0 && (job.logprobs === undefined || tokens === undefined || tokens.length === 0)) return;
          sendFirst();
          send(event(modelName, { ...shape.piece(text), ...(job.logprobs !== undefined && tokens !== undefined ? { logprobs: shape.logprobs(tokens, answerLength) } : {}) }));
          answerLength += text.length;
        },
        ...(thought
          ? {
              onThought: (text: string) => {
                sendFirst();
                send(event(modelName, thought(text)));
              },
            }
          : {}),
        ...(callArguments
          ? {
              onCallArguments: (text: string) => {
                const delta = text.length > 0 ? callArguments(text) : undefined;
                if (delta === undefined) return;
                sendFirst();
                send(event(modelName, delta));
              },
            }
          : {}),
      }),
    (outcome) => {
      ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
      sendFirst();
      send(event(modelName, { ...shape.last(outcome), finish_reason: finishReason(outcome) }));
      if (shape.includeUsage) send(event(modelName, undefined, { usage: usageOf(outcome) }));
      send("data: [DONE]\n\n");
    },
    // Headers are out: the error travels as an event, and the stream ends without [DONE].
    (e) => `data: ${JSON.stringify({ error: { message: e.message, type: e.details.type ?? "server_error", param: e.details.param ?? null, code: e.details.code ?? null } })}\n\n`,
  );
}

export async function embeddings(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { f, model } = await bodyWithModel(ctx, req);
  const input = f.raw("input");
  const texts = typeof input === "string" ? [input] : Array.isArray(input) && input.length > 0 && input.every((s) => typeof s === "string") ? (input as string[]) : undefined;
  if (!texts) {
    // LangChain's OpenAIEmbeddings sends OpenAI's tiktoken ids by default: ids of another vocabulary, so refused rather than embedded as garbage.
    throw badRequest('"input" must be a string or a non-empty array of strings: token arrays are not supported (LangChain: OpenAIEmbeddings({ checkEmbeddingCtxLength: false }) sends text)', "input");
  }
  if (texts.length > 2048) throw badRequest('"input" has more than 2048 items', "input");
  const empty = texts.findIndex((text) => text === "");
  if (empty >= 0) throw badRequest(`"input${typeof input === "string" ? "" : `[${empty}]`}" is empty: there is nothing to embed`, "input");
  const format = f.string("encoding_format") ?? "float";
  if (format !== "float" && format !== "base64") throw badRequest('"encoding_format" must be float or base64', "encoding_format");
  const dimensions = f.number("dimensions", { integer: true, min: 1 });
  const { vectors, promptTokens, model: served } = await embed(ctx.service, model, "model", texts, { normalize: true, dimensions, signal: clientGone(res) });
  ctx.note({ promptTokens });
  sendJson(res, 200, {
    object: "list",
    model: served,
    data: vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: format === "base64" ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector,
    })),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

export interface EmbedOptions {
  keepAliveMs?: number | undefined;
  /** Unit length (OpenAI's, ollama's /api/embed): a dot product is then the cosine similarity. */
  normalize?: boolean;
  /** Keep the first N values, then normalise (OpenAI's and ollama's `dimensions`). */
  dimensions?: number | undefined;
  /** An input longer than the context loses its end instead of failing (ollama's default). */
  truncate?: boolean;
  /** The client went away. */
  signal?: AbortSignal;
}

/** Embeds texts one after another on the model's embedding context (shared by both APIs). */
export async function embed(service: Service, name: string, param: string, texts: string[], options: EmbedOptions = {}): Promise<{ vectors: number[][]; promptTokens: number; model: string; loadMs: number }> {
  const held = await service.hold(name, param, options.keepAliveMs);
  try {
    const { vectors, promptTokens } = await service.embed(held.entry, texts, { truncate: options.truncate === true, ...(options.signal ? { signal: options.signal } : {}) });
    const length = vectors[0]?.length ?? 0;
    if (options.dimensions !== undefined && options.dimensions > length) {
      throw badRequest(`"dimensions" is ${options.dimensions} but ${held.model.name} gives ${length}-value embeddings`, "dimensions");
    }
    const shaped = vectors.map((vector) => {
      const kept = options.dimensions !== undefined ? vector.slice(0, options.dimensions) : vector;
      return options.normalize || options.dimensions !== undefined ? unitLength(kept) : kept;
    });
    return { vectors: shaped, promptTokens, model: held.model.name, loadMs: held.loadMs };
  } finally {
    held.release();
  }
}

function unitLength(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
  return norm > 0 ? vector.map((x) => x / norm) : vector;
}
