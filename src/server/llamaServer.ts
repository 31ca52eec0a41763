import type { IncomingMessage, ServerResponse } from "node:http";
import { Fields, readSampling } from "./fields.js";
import { badRequest, clientGone, HttpError, readJsonBody, sendJson, streamAnswer, StreamWriter } from "./http.js";
import type { AdapterContext } from "./openai.js";
import { toHttpError, type JobOutcome } from "./service.js";
import { detokenizeIds, tokenizeText, tokenizerFacts, tokenPiece } from "../engine/tokenizer.js";

/**
 * llama-server's own API where editors use it: `POST /infill`, fill in the middle as llama.vscode and
 * llama.vim ask for it (`input_prefix`, `input_suffix`, `prompt` — the cursor line's text before the cursor,
 * which llama-server tokenises apart and puts after the prefix — and llama-server's sampling fields), answered in llama-server's
 * /completion shape (`content`, `stop_type`, `tokens_cached`, `timings`; `response_fields` picks fields).
 * `model` may be left out, as llama-server serves one: the first model named on the command line.
 * `input_extra` (other files' text) goes before the prompt as llama-server lays it out (engine/generate.ts).
 */

export function llamaServerError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, { error: { code: error.status, message: error.message, type: error.details.type ?? "invalid_request_error" } }, error.details.headers ?? {});
}

export async function infill(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const f = new Fields(await readJsonBody(req, ctx.bodyLimit));
  const model = defaultModel(ctx, f);
  const prefix = f.string("input_prefix") ?? "";
  const suffix = f.string("input_suffix") ?? "";
  const prefixTail = f.string("prompt") ?? "";
  const extra = f.array("input_extra", { maxItems: 1024 }) ?? [];
  const infillExtra = extra.map((_, index) => {
    const chunk = f.item("input_extra", extra, index);
    return { text: chunk.string("text", { required: true }) ?? "", filename: chunk.string("filename") ?? "tmp" };
  });
  // llama-server's -1: until the context is full.
  const nPredict = f.number("n_predict", { integer: true, min: -1 });
  const stream = f.boolean("stream") === true;
  const fields = f.strings("response_fields", { maxItems: 64 });
  const job = {
    model,
    modelParam: "model",
    prompt: prefix,
    suffix,
    prefixTail,
    infillExtra,
    chat: false,
    // As llama-server fits an infill prompt: the prefix loses its start.
    truncate: true,
    maxTokens: nPredict === undefined ? undefined : nPredict < 0 ? -1 : Math.max(1, nPredict),
    maxTokensParam: "n_predict",
    maxTokensPastContext: true,
    sampling: readSampling(f, 10),
    stop: f.strings("stop", { maxItems: 16 }) ?? [],
  };
  const signal = clientGone(res);
  const modelName = ctx.service.model(model, "model").name;
  if (!stream) {
    const outcome = await ctx.service.run({ ...job, signal });
    ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
    sendJson(res, 200, picked(finalObject(outcome, modelName), fields));
    return;
  }
  const writer = new StreamWriter(res, "text/event-stream; charset=utf-8");
  const event = (value: object) => `data: ${JSON.stringify(value)}\n\n`;
  await streamAnswer(
    writer,
    undefined,
    () =>
      ctx.service.run({
        ...job,
        signal,
        onText: (text) => {
          if (text.length > 0) writer.send(event({ index: 0, content: text, tokens: [], stop: false, id_slot: -1 }));
        },
      }),
    (outcome) => {
      ctx.note({ promptTokens: outcome.result.promptTokens, generatedTokens: outcome.result.generatedTokens });
      writer.send(event(picked({ ...finalObject(outcome, modelName), content: "" }, fields)));
    },
    (error) => event({ error: { code: error.status, message: error.message, type: error.details.type ?? "server_error" } }),
  );
}

/** llama-server's last /completion object: the text, why it stopped, the counts and its timings. */
function finalObject(outcome: JobOutcome, model: string) {
  const { result } = outcome;
  const promptEvaluated = result.promptTokens - result.cachedPromptTokens;
  const promptMs = result.timings.promptMs ?? 0;
  const predictedMs = result.timings.generationMs ?? 0;
  return {
    index: 0,
    content: result.text,
    tokens: [],
    id_slot: result.slot,
    stop: true,
    model,
    tokens_predicted: result.generatedTokens,
    tokens_evaluated: result.promptTokens,
    has_new_line: result.text.includes("\n"),
    truncated: result.truncatedPromptTokens > 0,
    stop_type: result.stopReason === "maxTokens" || outcome.timedOut ? "limit" : result.stopReason === "stop" ? "word" : "eos",
    stopping_word: result.stopText ?? "",
    tokens_cached: result.cachedPromptTokens,
    timings: {
      cache_n: result.cachedPromptTokens,
      prompt_n: promptEvaluated,
      prompt_ms: promptMs,
      prompt_per_token_ms: promptEvaluated > 0 ? promptMs / promptEvaluated : 0,
      prompt_per_second: promptMs > 0 ? (promptEvaluated / promptMs) * 1000 : 0,
      predicted_n: result.generatedTokens,
      predicted_ms: predictedMs,
      predicted_per_token_ms: result.generatedTokens > 0 ? predictedMs / result.generatedTokens : 0,
      predicted_per_second: result.timings.generationTokensPerSecond ?? 0,
    },
  };
}

/** llama-server's `response_fields`: only those fields, each under its path ("timings/prompt_n"). */
function picked(value: Record<string, unknown>, fields: string[] | undefined): Record<string, unknown> {
  if (fields === undefined || fields.length === 0) return value;
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    let at: unknown = value;
    for (const key of field.split("/")) at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[key] : undefined;
    if (at !== undefined) out[field] = at;
  }
  return out;
}

/**
 * The tokenizer endpoints, in both shapes clients use: llama-server's (`content`, `add_special` default false,
 * `parse_special` default true, `with_pieces`) and vLLM's (`prompt`, `add_special_tokens` default true; answered
 * with `count` and `max_model_len`), which lm-evaluation-harness's remote tokenizer calls. `model` may be left
 * out (the first command-line model), as both peers serve one.
 */
export async function tokenize(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const f = new Fields(await readJsonBody(req, ctx.bodyLimit));
  const model = defaultModel(ctx, f);
  const content = f.string("content");
  const vllm = content === undefined;
  const text = content ?? f.string("prompt");
  if (text === undefined) throw badRequest('"content" (or "prompt") is required: the text to tokenize', "content");
  const addSpecial = vllm ? f.boolean("add_special_tokens") !== false : f.boolean("add_special") === true;
  const parseSpecial = f.boolean("parse_special") !== false;
  const withPieces = f.boolean("with_pieces") === true;
  const held = await ctx.service.hold(model, "model");
  try {
    const { loaded } = held.entry;
    const tokens = tokenizeText(loaded, text, { addSpecial, parseSpecial });
    ctx.note({ promptTokens: tokens.length });
    const listed = withPieces ? tokens.map((id) => ({ id, piece: tokenPiece(loaded, id) })) : tokens;
    sendJson(res, 200, vllm ? { tokens: listed, count: tokens.length, max_model_len: loaded.context.contextSize } : { tokens: listed });
  } finally {
    held.release();
  }
}

/** Token ids back to text: llama-server answers `content`, vLLM `prompt`; both are given. */
export async function detokenize(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const f = new Fields(await readJsonBody(req, ctx.bodyLimit));
  const model = defaultModel(ctx, f);
  const tokens = f.raw("tokens") ?? [];
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "number")) throw badRequest('"tokens" must be an array of token ids', "tokens");
  const held = await ctx.service.hold(model, "model");
  try {
    let text: string;
    try {
      text = detokenizeIds(held.entry.loaded, tokens);
    } catch (error) {
      throw toHttpError(error);
    }
    sendJson(res, 200, { content: text, prompt: text });
  } finally {
    held.release();
  }
}

/** vLLM's GET /tokenizer_info (`?model=` picks a model): its special tokens, chat template and context length. */
export async function tokenizerInfo(ctx: AdapterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const model = modelOrFirst(ctx, new URL(req.url ?? "/", "http://localhost").searchParams.get("model") ?? undefined);
  const held = await ctx.service.hold(model, "model");
  try {
    const facts = tokenizerFacts(held.entry.loaded);
    sendJson(res, 200, {
      tokenizer_class: "llama.cpp",
      bos_token: facts.bosToken,
      eos_token: facts.eosToken,
      pad_token: null,
      chat_template: facts.chatTemplate,
      model_max_length: facts.contextSize,
      vocab_size: facts.vocabularySize,
    });
  } finally {
    held.release();
  }
}

/** The request's `model`, or the first command-line model (llama-server and vLLM serve one). */
function defaultModel(ctx: AdapterContext, f: Fields): string {
  return modelOrFirst(ctx, f.string("model"));
}

function modelOrFirst(ctx: AdapterContext, named: string | undefined): string {
  const model = named !== undefined && named !== "" ? named : ctx.service.options.names.first?.name;
  if (model === undefined) throw badRequest('"model" is required: this server was started without a model to default to', "model");
  ctx.note({ model });
  return model;
}
