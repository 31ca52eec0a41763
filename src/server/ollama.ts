import type { IncomingMessage, ServerResponse } from "node:http";
import fs from "node:fs";
import type { ModelFileFacts } from "../engine/inspect.js";
import { threadpoolStatus } from "../engine/threadpool.js";
import { modelCapabilities } from "../models/capabilities.js";
import type { ChatMessage, ThinkSetting, ToolDefinition } from "../engine/types.js";
import { packageVersion } from "../cli/version.js";
import { parseKeepAlive } from "./duration.js";
import { Fields, readSampling } from "./fields.js";
import { badRequest, clientGone, HttpError, randomId, readJsonBody, sendJson, streamAnswer, StreamWriter } from "./http.js";
import { bodyWithModel, checkToolResults, embed, type AdapterContext } from "./openai.js";
import { readLogprobs, tokenLogprobs } from "./logprobs.js";
import type { Job, JobOutcome } from "./service.js";
import type { LmrunFinalExtension } from "./wire.js";

/**
 * ollama's API (what ollama-js, Open WebUI and lmrun's own client send): /api/generate and
 * /api/chat (NDJSON streams by default), /api/tags, /api/ps, /api/show, /api/embed(dings),
 * /api/version. Endpoints that download, create or delete models are refused.
 */

export function ollamaError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, { error: error.message }, error.details.headers ?? {});
}

const ns = (ms: number | null) => Math.round((ms ?? 0) * 1e6);

function keepAliveOf(f: Fields): number | undefined {
  if (!f.has("keep_alive")) return undefined;
  const ms = parseKeepAlive(f.raw("keep_alive"));
  if (ms === undefined) throw badRequest('"keep_alive" must be a duration ("5m", "1h", "-1") or a number of seconds', "keep_alive");
  return ms;
}

function formatOf(f: Fields): Job["jsonSchema"] {
  const format = f.raw("format");
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return "json";
  if (typeof format === "object" && !Array.isArray(format)) return format;
  throw badRequest('"format" must be "json" or a JSON schema object', "format");
}

/** ollama's `options` (Modelfile parameters); unknown ones (num_thread, num_gpu ...) are ignored, as ollama does. */
function optionsOf(f: Fields): Pick<Job, "maxTokens" | "maxTokensParam" | "maxTokensPastContext" | "sampling" | "stop" | "truncate"> {
  const o = f.object("options") ?? new Fields({}, "options");
  const numPredict = o.number("num_predict", { integer: true, min: -2 });
  if (numPredict === 0) throw badRequest('"options.num_predict" must be positive, or -1 for no limit', "options.num_predict");
  // A slot's context is fixed when the model loads (lmrun serve --ctx); a client's num_ctx (Open WebUI
  // and Continue send 8k and more) is read for its type and otherwise left, as ollama caps it at the model's.
  o.number("num_ctx", { integer: true, min: 1 });
  return {
    // -1 (no limit) and -2 (fill the context): until the model stops or the slot's context is full.
    maxTokens: numPredict === undefined ? undefined : numPredict > 0 ? numPredict : -1,
    maxTokensParam: "options.num_predict",
    // Clients send fixed limits (4096, 8192) whatever the model; ollama stops at the context's end.
    maxTokensPastContext: true,
    sampling: readSampling(o, 100),
    stop: o.strings("stop", { maxItems: 16 }) ?? [],
    // ollama's default: a prompt or conversation longer than the context loses its start (or its oldest
    // messages). lmrun's own client sends "truncate": false unless run --truncate.
    truncate: f.boolean("truncate") ?? true,
  };
}

/** Go's ollama client sends unset strings as "" (no omitempty): "" is absent. */
function optionalString(f: Fields, name: string): string | undefined {
  const value = f.string(name);
  return value === "" ? undefined : value;
}

/**
 * ollama's `think`: true, false, or a level ("low", "medium", "high"; "max" is high, as ollama reads it):
 * the reasoning effort a model that takes one is told (gpt-oss), thinking on for the others. Asking a
 * model that cannot think to think is ollama's 400, `"NAME" does not support thinking`.
 */
async function thinkOf(ctx: AdapterContext, f: Fields, model: string): Promise<ThinkSetting | undefined> {
  const think = f.raw("think");
  if (think === undefined || think === null) return undefined;
  let setting: ThinkSetting;
  if (typeof think === "boolean") setting = think;
  else if (think === "low" || think === "medium" || think === "high") setting = think;
  else if (think === "max") setting = "high";
  else throw badRequest('"think" must be true, false, "low", "medium", "high" or "max"', "think");
  if (setting !== false && !modelCapabilities(await factsFor(ctx.service.model(model, "model").path)).includes("thinking")) throw badRequest(`${JSON.stringify(model)} does not support thinking`, "think");
  return setting;
}

function noImages(f: Fields, at: string): void {
  const images = f.array("images");
  if (images && images.length > 0) throw badRequest(`images are not supported: lmrun serves text-only models`, `${at}images`);
}

export function lmrunExtension(outcome: JobOutcome): LmrunFinalExtension {
  const { result, request, entry, model } = outcome;
  const summary = entry.loaded.summary;
  return {
    stopReason: result.stopReason,
    promptTokens: result.promptTokens,
    generatedTokens: result.generatedTokens,
    truncatedPromptTokens: result.truncatedPromptTokens,
    chatTemplate: request.chat,
    seed: request.sampling.seed,
    sampling: {
      temperature: request.sampling.temperature,
      topK: request.sampling.topK,
      topP: request.sampling.topP,
      minP: request.sampling.minP,
      repeatPenalty: request.sampling.repeatPenalty,
      seed: request.sampling.seed,
      maxTokens: request.maxTokens,
      stop: request.stop,
    },
    load: {
      contextSize: summary.contextSize,
      requestedContextSize: summary.requestedContextSize ?? null,
      threads: summary.threads,
      batchThreads: summary.batchThreads,
      gpu: summary.gpu,
      gpuLayers: summary.gpuLayers,
      threadpool: threadpoolStatus().decodesWithPool > 0 ? "persistent" : "per-decode",
      parallel: entry.scheduler.parallel,
    },
    model: { path: summary.path, fileName: summary.fileName, name: model.name },
    ttftMs: result.timings.ttftMs,
    loadMs: outcome.loadMs,
    queueMs: result.queueMs,
    promptMs: result.timings.promptMs,
    generationMs: result.timings.generationMs,
    promptTokensPerSecond: result.timings.promptTokensPerSecond,
    generationTokensPerSecond: result.timings.generationTokensPerSecond,
    totalMs: result.timings.totalMs,
    cachedPromptTokens: result.cachedPromptTokens,
    slot: result.slot,
  };
}

function doneReason(outcome: JobOutcome): string {
  if (outcome.result.stopReason === "maxTokens" || outcome.timedOut) return "length";
  return "stop";
}

function finalFields(outcome: JobOutcome, receivedAt: number) {
  const { result } = outcome;
  return {
    done: true,
    done_reason: doneReason(outcome),
    total_duration: ns(performance.now() - receivedAt),
    load_duration: ns(outcome.loadMs),
    prompt_eval_count: result.promptTokens,
    prompt_eval_duration: ns(result.timings.promptMs),
    eval_count: result.generatedTokens,
    eval_duration: ns(result.timings.generationMs),
    lmrun: lmrunExtension(outcome),
  };
}

/** A request with nothing to generate loads the model (or, with keep_alive 0, unloads it), as ollama does. */
async function loadOrUnload(ctx: AdapterContext, res: ServerResponse, model: string, keepAliveMs: number | undefined, shape: (done: object) => object): Promise<void> {
  const servable = ctx.service.model(model, "model");
  const createdAt = new Date().toISOString();
  if (keepAliveMs === 0) {
    await ctx.service.pool.unload(servable.path);
    sendJson(res, 200, shape({ model, created_at: createdAt, done: true, done_reason: "unload" }));
    return;
  }
  const held = await ctx.service.hold(model, "model", keepAliveMs);
  held.release();
  sendJson(res, 200, shape({ model, created_at: createdAt, done: true, done_reason: "load", load_duration: ns(held.loadMs) }));
}

export async function generate(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const receivedAt = performance.now();
  const { f, model } = await bodyWithModel(ctx, req);
  const prompt = f.string("prompt") ?? "";
  const keepAliveMs = keepAliveOf(f);
  noImages(f, "");
  // Fill in the middle (code completion, as editors ask ollama for it): the answer goes between prompt and suffix.
  const suffix = optionalString(f, "suffix");
  if (optionalString(f, "template") !== undefined) throw badRequest('"template" is not supported: the model\'s own chat template is used (or "raw": true for none)', "template");
  const options = optionsOf(f);
  const jsonSchema = formatOf(f);
  const raw = f.boolean("raw") === true;
  const system = optionalString(f, "system");
  if (raw && system !== undefined) throw badRequest('raw mode does not support "system": put the system text in the prompt', "system");
  const context = contextOf(f);
  if (raw && context !== undefined) throw badRequest('raw mode does not support "context": put the earlier exchange in the prompt', "context");
  if (suffix !== undefined && context !== undefined) throw badRequest('"suffix" (fill in the middle) does not continue a "context": send the whole prefix as the prompt', "context");
  const stream = f.boolean("stream") !== false;
  if (prompt === "") return loadOrUnload(ctx, res, model, keepAliveMs, (done) => ({ ...done, response: "" }));
  const job = {
    model,
    modelParam: "model",
    prompt,
    // A fill-in-the-middle prompt is laid out by the model's infill tokens, not its chat template (nor a system text).
    ...(suffix !== undefined ? { suffix } : { systemPrompt: system }),
    chat: raw || suffix !== undefined ? false : ("template" as const),
    ...options,
    jsonSchema,
    think: await thinkOf(ctx, f, model),
    keepAliveMs,
    // ollama returns the exchange's tokens with every templated answer (not raw ones).
    ...(raw || suffix !== undefined ? {} : { returnTokens: true, ...(context !== undefined ? { priorTokens: context } : {}) }),
    logprobs: readLogprobs(f, "ollama"),
    // Raw, or continued from `context`, the text is a plain completion: ollama splits a thinking model's thoughts out of it.
    thoughtsInText: true,
  };
  const contextField = (outcome: JobOutcome) => (outcome.result.tokens !== undefined ? { context: outcome.result.tokens } : {});
  await respond(ctx, res, job, stream, receivedAt, {
    piece: (text) => ({ response: text }),
    thought: (text) => ({ response: "", thinking: text }),
    last: (outcome) => ({ response: "", ...contextField(outcome) }),
    whole: (outcome) => ({ response: outcome.result.text, ...thinkingOf(outcome), ...contextField(outcome) }),
  });
}

/**
 * ollama's `context` (deprecated there, still sent): the tokens an earlier /api/generate answer returned,
 * for this prompt to continue. Token ids are checked against the model's vocabulary when it is loaded.
 */
function contextOf(f: Fields): number[] | undefined {
  const items = f.array("context", { maxItems: 1_000_000 });
  if (items === undefined || items.length === 0) return undefined;
  if (!items.every((token) => Number.isInteger(token) && (token as number) >= 0)) throw badRequest('"context" must be an array of token ids (integers from 0), as an earlier answer returned it', "context");
  return items as number[];
}

function messagesOf(f: Fields): ChatMessage[] {
  const items = f.array("messages", { maxItems: 10_000 }) ?? [];
  let callCount = 0;
  return items.map((_, index) => {
    const m = f.item("messages", items, index);
    const at = `messages[${index}]`;
    noImages(m, `${at}.`);
    const role = m.string("role", { required: true });
    const text = m.string("content") ?? "";
    if (role === "system" || role === "user") return { role, text };
    if (role === "tool") return { role: "tool", text, toolCallId: m.string("tool_name") ?? m.string("tool_call_id") };
    if (role === "assistant") {
      const calls = m.array("tool_calls") ?? [];
      const toolCalls = calls.map((_c, i) => {
        const fn = m.item("tool_calls", calls, i).object("function");
        const name = fn?.string("name", { required: true }) ?? "";
        callCount++;
        // ollama links a tool message to its call by the function's name.
        return { id: name || `call_${callCount}`, name, arguments: fn?.raw("arguments") ?? {} };
      });
      const thinking = m.string("thinking");
      return { role: "assistant", text, ...(thinking ? { thinking } : {}), ...(toolCalls.length > 0 ? { toolCalls } : {}) };
    }
    throw badRequest(`"${at}.role" must be system, user, assistant or tool (got ${JSON.stringify(role)})`, `${at}.role`);
  });
}

function toolsOf(f: Fields): ToolDefinition[] | undefined {
  const items = f.array("tools", { maxItems: 128 });
  if (!items || items.length === 0) return undefined;
  return items.map((_, index) => {
    const fn = f.item("tools", items, index).object("function");
    if (!fn) throw badRequest(`"tools[${index}].function" is required`, `tools[${index}].function`);
    const name = fn.string("name", { required: true, maxLength: 64 })!;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw badRequest(`"tools[${index}].function.name" may hold letters, digits, _ and - only`, `tools[${index}].function.name`);
    return { name, description: fn.string("description"), parameters: fn.object("parameters") ? (fn.raw("parameters") as object) : undefined };
  });
}

export async function chat(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const receivedAt = performance.now();
  const { f, model } = await bodyWithModel(ctx, req);
  const messages = messagesOf(f);
  checkToolResults(messages);
  const keepAliveMs = keepAliveOf(f);
  const options = optionsOf(f);
  const jsonSchema = formatOf(f);
  const tools = toolsOf(f);
  if (tools && jsonSchema !== undefined) throw badRequest('"tools" and "format" cannot be combined', "format");
  const stream = f.boolean("stream") !== false;
  const message = (content: string, extra: object = {}) => ({ message: { role: "assistant", content, ...extra } });
  if (messages.length === 0) return loadOrUnload(ctx, res, model, keepAliveMs, (done) => ({ ...done, ...message("") }));
  const job = { model, modelParam: "model", prompt: "", messages, chat: true, ...options, jsonSchema, tools, think: await thinkOf(ctx, f, model), keepAliveMs, logprobs: readLogprobs(f, "ollama") };
  const calls = (outcome: JobOutcome) =>
    outcome.result.toolCalls
      ? { tool_calls: outcome.result.toolCalls.map((c, index) => ({ id: randomId("call", 4), function: { index, name: c.name, arguments: c.arguments ?? {} } })) }
      : {};
  await respond(ctx, res, job, stream, receivedAt, {
    piece: (text) => message(text),
    thought: (text) => message("", { thinking: text }),
    last: (outcome) => message("", calls(outcome)),
    whole: (outcome) => message(outcome.result.text, { ...thinkingOf(outcome), ...calls(outcome) }),
  });
}

function thinkingOf(outcome: JobOutcome): { thinking?: string } {
  return outcome.result.thinking !== undefined ? { thinking: outcome.result.thinking } : {};
}

interface Shape {
  piece(text: string): object;
  /** A piece of a thinking model's thoughts. */
  thought(text: string): object;
  last(outcome: JobOutcome): object;
  whole(outcome: JobOutcome): object;
}

async function respond(
  ctx: AdapterContext,
  res: ServerResponse,
  job: Omit<Job, "signal" | "onText" | "onThought" | "onStart">,
  stream: boolean,
  receivedAt: number,
  shape: Shape,
): Promise<void> {
  const signal = clientGone(res);
  if (!stream) {
    const outcome = await ctx.service.run({ ...job, signal });
    ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
    const logprobs = job.logprobs !== undefined && outcome.result.logprobs !== undefined ? { logprobs: tokenLogprobs(outcome.result.logprobs) } : {};
    sendJson(res, 200, { model: job.model, created_at: new Date().toISOString(), ...shape.whole(outcome), ...logprobs, ...finalFields(outcome, receivedAt) });
    return;
  }
  const writer = new StreamWriter(res, "application/x-ndjson");
  const line = (value: object) => JSON.stringify(value) + "\n";
  const send = (value: object) => writer.send(line(value));
  await streamAnswer(
    writer,
    undefined,
    () =>
      ctx.service.run({
        ...job,
        signal,
        onText: (text, tokens) =>
          text.length > 0 &&
          send({
            model: job.model,
            created_at: new Date().toISOString(),
            ...shape.piece(text),
            // Each line carries its own tokens' (ollama's form).
            ...(job.logprobs !== undefined && tokens !== undefined ? { logprobs: tokenLogprobs(tokens) } : {}),
            done: false,
          }),
        onThought: (text) => send({ model: job.model, created_at: new Date().toISOString(), ...shape.thought(text), done: false }),
      }),
    (outcome) => {
      ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
      send({ model: job.model, created_at: new Date().toISOString(), ...shape.last(outcome), ...finalFields(outcome, receivedAt) });
    },
    // Status 200 is out: ollama's clients read a line with "error" as the failure.
    (error) => line({ error: error.message }),
  );
}

/** Header facts per file, read once (a file that changes is read again). */
const factsCache = new Map<string, { mtimeMs: number; facts: Promise<ModelFileFacts | undefined> }>();

function factsFor(modelPath: string): Promise<ModelFileFacts | undefined> {
  const mtimeMs = fs.statSync(modelPath, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const cached = factsCache.get(modelPath);
  if (cached && cached.mtimeMs === mtimeMs) return cached.facts;
  // A file that cannot be read is listed without details; loading it says what is wrong. The reader
  // loads when first asked (serve --rpc's forwarding parent never is).
  const facts = import("../engine/inspect.js").then(({ describeModelFile }) => describeModelFile(modelPath)).catch(() => undefined);
  factsCache.set(modelPath, { mtimeMs, facts });
  return facts;
}

/** ollama's parameter_size: "135M", "7.2B". */
function parameterSize(parameters: number | undefined): string {
  if (!parameters) return "";
  if (parameters >= 1e9) return `${(parameters / 1e9).toFixed(1)}B`;
  if (parameters >= 1e6) return `${Math.round(parameters / 1e6)}M`;
  return `${Math.round(parameters / 1e3)}K`;
}

function detailsOf(facts: ModelFileFacts | undefined, quant?: string) {
  const family = facts?.architecture ?? "";
  return {
    parent_model: "",
    format: "gguf",
    family,
    families: family ? [family] : null,
    parameter_size: parameterSize(facts?.parameters),
    quantization_level: facts?.quant ?? quant ?? "",
  };
}


export async function tags(ctx: AdapterContext, res: ServerResponse): Promise<void> {
  const listed = ctx.service.options.names.list();
  const facts = await Promise.all(listed.map((m) => factsFor(m.path)));
  const models = listed.map((m, index) => ({
    name: m.name,
    model: m.name,
    modified_at: m.modifiedAt,
    size: m.sizeBytes,
    digest: m.digest,
    details: detailsOf(facts[index], m.quant),
    // lmrun's client maps a file path the user gave to the name the server knows it by.
    lmrun: { path: m.path },
  }));
  sendJson(res, 200, { models });
}

export async function ps(ctx: AdapterContext, res: ServerResponse): Promise<void> {
  const models = await Promise.all(ctx.service.pool.list().map(async (e) => ({
    name: e.name,
    model: e.name,
    size: e.loaded.summary.sizeBytes,
    digest: "",
    details: detailsOf(await factsFor(e.loaded.summary.path)),
    // ollama's "forever" is a far-future time; Go's zero time would read as expired.
    expires_at: new Date(e.expiresAt ?? (e.keepAliveMs < 0 ? Date.UTC(2318, 0, 1) : Date.now() + e.keepAliveMs)).toISOString(),
    size_vram: 0,
    context_length: e.loaded.context.contextSize,
    lmrun: {
      path: e.loaded.summary.path,
      parallel: e.scheduler.parallel,
      busySlots: e.scheduler.busySlots,
      queued: e.scheduler.queued,
      keepAliveMs: e.keepAliveMs,
      loadedAt: new Date(e.loadedAt).toISOString(),
    },
  })));
  sendJson(res, 200, { models });
}

export async function show(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const f = new Fields(await readJsonBody(req, ctx.bodyLimit));
  const name = f.string("model") ?? f.string("name");
  if (name === undefined || name === "") throw badRequest('"model" is required', "model");
  const model = ctx.service.model(name, "model");
  const listed = ctx.service.options.names.list().find((m) => m.path === model.path);
  const facts = await factsFor(model.path);
  const architecture = facts?.architecture ?? "llama";
  // The file's metadata, loaded or not (ollama's model_info): clients read <architecture>.context_length
  // for the window they may fill. The chat template is `template`, as ollama has it.
  const { "tokenizer.chat_template": _template, ...metadata } = facts?.metadata ?? {};
  const modelInfo: Record<string, unknown> = { ...metadata, "general.architecture": architecture };
  if (facts?.parameters !== undefined) modelInfo["general.parameter_count"] = facts.parameters;
  if (facts?.contextLength !== undefined) modelInfo[`${architecture}.context_length`] = facts.contextLength;
  sendJson(res, 200, {
    modelfile: "",
    parameters: "",
    template: facts?.chatTemplate ?? "",
    details: detailsOf(facts, listed?.quant),
    model_info: modelInfo,
    capabilities: modelCapabilities(facts),
    modified_at: listed?.modifiedAt ?? "",
  });
}

export async function embedEndpoint(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse, legacy: boolean): Promise<void> {
  const receivedAt = performance.now();
  const { f, model } = await bodyWithModel(ctx, req);
  const keepAliveMs = keepAliveOf(f);
  const field = legacy ? "prompt" : "input";
  const input = f.raw(field) ?? "";
  const texts = typeof input === "string" ? (input === "" ? [] : [input]) : Array.isArray(input) && input.every((s) => typeof s === "string") ? (input as string[]) : undefined;
  if (!texts || (legacy && Array.isArray(input))) throw badRequest(`"${field}" must be a string${legacy ? "" : " or an array of strings"}`, field);
  if (texts.length > 2048) throw badRequest(`"${field}" has more than 2048 items`, field);
  const empty = texts.indexOf("");
  if (empty >= 0) throw badRequest(`"${field}[${empty}]" is empty: there is nothing to embed`, field);
  const dimensions = legacy ? undefined : f.number("dimensions", { integer: true, min: 1 });
  // Nothing to embed loads the model (clients preload an embedding model this way), as ollama does.
  const result =
    texts.length > 0
      ? // /api/embed's vectors have unit length (ollama's); the legacy /api/embeddings' are raw.
        await embed(ctx.service, model, "model", texts, { keepAliveMs, normalize: !legacy, dimensions, truncate: f.boolean("truncate") ?? true, signal: clientGone(res) })
      : await ctx.service.hold(model, "model", keepAliveMs).then((held) => (held.release(), { vectors: [], promptTokens: 0, model: held.model.name, loadMs: held.loadMs }));
  ctx.note({ promptTokens: result.promptTokens });
  if (legacy) {
    sendJson(res, 200, { embedding: result.vectors[0] ?? [] });
    return;
  }
  sendJson(res, 200, {
    model,
    embeddings: result.vectors,
    total_duration: ns(performance.now() - receivedAt),
    load_duration: ns(result.loadMs),
    prompt_eval_count: result.promptTokens,
  });
}

/**
 * The ollama API level lmrun follows (ollama's docs/openapi.yaml), not lmrun's own version: clients
 * gate features on it (VS Code's Copilot wants at least 0.6.4). lmrun's version rides along.
 */
export const OLLAMA_API_VERSION = "0.12.6";

export function version(res: ServerResponse): void {
  sendJson(res, 200, { version: OLLAMA_API_VERSION, lmrun: { version: packageVersion() } });
}

/** The endpoints behind ollama's path-traversal and RCE advisories: never served here. */
export function refused(path: string): HttpError {
  return new HttpError(403, `${path} is not available: lmrun serve never downloads, creates, copies or deletes models for a request (run lmrun pull / lmrun rm on the server's machine)`, {
    type: "permission_error",
  });
}
