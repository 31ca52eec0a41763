import { LmrunError } from "../errors.js";
import type { ModelPool, PoolEntry, ServableModel } from "../engine/scheduler/modelPool.js";
import { PoolFullError } from "../engine/scheduler/modelPool.js";
import { AbortedWhileQueuedError, QueueFullError, type ScheduledResult } from "../engine/scheduler/slotScheduler.js";
import { InsufficientMemoryError } from "../engine/model.js";
import { RpcWorkerError } from "../engine/rpc/preflight.js";
import type { GenerateRequest, PromptTokenLogprob, SamplingOptions, ThinkSetting, TokenLogprob } from "../engine/types.js";
import { promptTextOf, TokenIdsError } from "../engine/tokenizer.js";
import { PromptTooLongError, promptTokensOf } from "../engine/generate.js";
import { HttpError } from "./http.js";
import type { Metrics } from "./metrics.js";
import type { ModelNames } from "./modelNames.js";

/**
 * What both APIs do once a request is parsed: find the model (allowlist only), hold it in the pool,
 * generate on a slot, and turn engine errors into HTTP statuses. The adapters (openai.ts,
 * ollama.ts) only translate shapes.
 */

export interface ServeDefaults {
  sampling: Omit<SamplingOptions, "seed"> & { seed?: number | undefined };
  maxTokens: number;
}

export interface ServiceOptions {
  names: ModelNames;
  pool: ModelPool;
  defaults: ServeDefaults;
  metrics: Metrics;
  /** Bound on one request, queue wait included (0: none). */
  timeoutMs: number;
  /** Aborted when the server stops: every generation still running ends. */
  shutdown: AbortSignal;
}

/** A request as the adapters hand it over; unset sampling fields take the server's defaults. */
export interface Job {
  model: string;
  /** The body field the model came from, for error messages. */
  modelParam: string;
  prompt: string;
  messages?: GenerateRequest["messages"];
  systemPrompt?: string | undefined;
  /** "template": chat template if the model has one, as `lmrun run` (false = --raw); true: always a chat wrapper. */
  chat: boolean | "template";
  maxTokens?: number | undefined;
  /** The body field max tokens came from. */
  maxTokensParam: string;
  /** More than a slot's context is not an error: generation ends where the context does (ollama's num_predict). */
  maxTokensPastContext?: boolean;
  sampling: Partial<SamplingOptions>;
  stop: string[];
  jsonSchema?: GenerateRequest["jsonSchema"];
  tools?: GenerateRequest["tools"];
  toolChoice?: GenerateRequest["toolChoice"];
  think?: ThinkSetting | undefined;
  /** ollama's context: tokens of an earlier exchange to continue, and whether to return this one's. */
  priorTokens?: GenerateRequest["priorTokens"];
  returnTokens?: boolean | undefined;
  /** Token log-probabilities, with this many alternatives at each position. */
  logprobs?: GenerateRequest["logprobs"];
  /** A plain completion's prompt as token ids (`prompt` unused). */
  promptTokenIds?: GenerateRequest["promptTokenIds"];
  /** The prompt's own tokens' log-probabilities (legacy completions' `echo` with `logprobs`). */
  promptLogprobs?: { top: number } | undefined;
  /** Fill in the middle: the text after the answer (`prompt` is the text before it). */
  suffix?: string | undefined;
  /** With `suffix`: more of the prefix, tokenised apart (llama-server's /infill `prompt`). */
  prefixTail?: string | undefined;
  /** With `suffix`: other files' text before the fill-in-the-middle prompt (llama-server's `input_extra`). */
  infillExtra?: GenerateRequest["infillExtra"];
  /** A plain completion's thoughts come apart from its answer (ollama's /api/generate). */
  thoughtsInText?: boolean | undefined;
  truncate: boolean;
  keepAliveMs?: number | undefined;
  /** The client went away. */
  signal: AbortSignal;
  /** The answer's text as it comes (with logprobs asked for, the tokens it is made of). */
  onText?: ((text: string, logprobs?: TokenLogprob[]) => void) | undefined;
  /** A thinking model's thoughts, apart from the answer. */
  onThought?: ((text: string) => void) | undefined;
  /** A forced tool call's JSON as it is generated (a named function's arguments, or required's calls). */
  onCallArguments?: ((text: string) => void) | undefined;
  /**
   * A slot took the request: its prompt's token count, how many of them the slot's cache holds, and (asked for)
   * its own tokens' log-probabilities and a token-id prompt's text, which a streamed echo starts with.
   */
  onStart?: ((prompt: { tokens: number; cached: number; promptLogprobs?: PromptTokenLogprob[]; promptText?: string }) => void) | undefined;
}

export interface JobOutcome {
  model: ServableModel;
  entry: PoolEntry;
  request: GenerateRequest;
  result: ScheduledResult;
  loadMs: number;
  /** The timeout ended it (the text is partial). */
  timedOut: boolean;
}

export class Service {
  constructor(readonly options: ServiceOptions) {}

  get pool(): ModelPool {
    return this.options.pool;
  }

  /** The model a request names, or a 404 in the API's shape. */
  model(name: string, param: string): ServableModel {
    const model = this.options.names.resolve(name);
    if (!model) {
      throw new HttpError(404, `model "${name}" not found: it is not one this server serves (see /v1/models or /api/tags; paths and URLs are never opened)`, {
        param,
        code: "model_not_found",
        // OpenAI's type for an unknown model (the code says which error it is).
        type: "invalid_request_error",
      });
    }
    return model;
  }

  /** Holds a model for a non-generating use (embeddings, preload); call release after. */
  async hold(name: string, param: string, keepAliveMs?: number): Promise<{ model: ServableModel; entry: PoolEntry; loadMs: number; release(): void }> {
    const model = this.model(name, param);
    const { entry, loadMs } = await this.pool.acquire(model).catch((error: unknown) => {
      throw toHttpError(error);
    });
    return { model, entry, loadMs, release: () => this.pool.release(entry, keepAliveMs) };
  }

  /** Embeddings on a held model's embedding context; a failure in the API's shape. */
  /** `signal`: the client went away. A --timeout and a shutdown end it too, between inputs. */
  async embed(entry: PoolEntry, texts: string[], options: { truncate?: boolean; signal?: AbortSignal } = {}): Promise<{ vectors: number[][]; promptTokens: number }> {
    const { signal, timeout } = this.bounded(options.signal);
    return this.pool.embed(entry, texts, { ...options, signal }).catch((error: unknown) => {
      if (timeout?.aborted) throw this.timedOut();
      throw toHttpError(error);
    });
  }

  /** A request's signal: its client leaving, the server's shutdown, or --timeout (kept apart to answer 504). */
  private bounded(client: AbortSignal | undefined): { signal: AbortSignal; timeout: AbortSignal | undefined } {
    const timeout = this.options.timeoutMs > 0 ? AbortSignal.timeout(this.options.timeoutMs) : undefined;
    return { signal: AbortSignal.any([...(client ? [client] : []), this.options.shutdown, ...(timeout ? [timeout] : [])]), timeout };
  }

  /** A job as the engine's request, the server's defaults filled in. */
  private requestOf(job: Omit<Job, "signal">, contextSize: number, hasChatTemplate: boolean): GenerateRequest {
    const defaults = this.options.defaults;
    return {
      prompt: job.prompt,
      chat: job.chat === "template" ? hasChatTemplate : job.chat,
      ...(job.messages !== undefined ? { messages: job.messages } : {}),
      ...(job.systemPrompt !== undefined ? { systemPrompt: job.systemPrompt } : {}),
      maxTokens: job.maxTokens ?? Math.min(defaults.maxTokens, contextSize),
      stop: job.stop,
      sampling: {
        ...defaults.sampling,
        ...stripUndefined(job.sampling),
        // No seed given: draw one, report it, and the answer can be repeated.
        seed: job.sampling.seed ?? defaults.sampling.seed ?? Math.floor(Math.random() * 2 ** 32),
      },
      ...(job.jsonSchema !== undefined ? { jsonSchema: job.jsonSchema } : {}),
      ...(job.tools !== undefined ? { tools: job.tools } : {}),
      ...(job.toolChoice !== undefined ? { toolChoice: job.toolChoice } : {}),
      ...(job.think !== undefined ? { think: job.think } : {}),
      ...(job.priorTokens !== undefined ? { priorTokens: job.priorTokens } : {}),
      ...(job.returnTokens ? { returnTokens: true } : {}),
      ...(job.logprobs !== undefined ? { logprobs: job.logprobs } : {}),
      ...(job.thoughtsInText ? { thoughtsInText: true } : {}),
      ...(job.promptTokenIds !== undefined ? { promptTokenIds: job.promptTokenIds } : {}),
      ...(job.suffix !== undefined ? { suffix: job.suffix } : {}),
      ...(job.prefixTail ? { prefixTail: job.prefixTail } : {}),
      ...(job.infillExtra !== undefined ? { infillExtra: job.infillExtra } : {}),
      truncate: job.truncate,
    };
  }

  private timedOut(): HttpError {
    return new HttpError(504, `the request took longer than --timeout (${this.options.timeoutMs / 1000} s)`, { type: "timeout_error" });
  }

  async run(job: Job): Promise<JobOutcome> {
    const model = this.model(job.model, job.modelParam);
    const { signal, timeout } = this.bounded(job.signal);
    let held: { entry: PoolEntry; loadMs: number };
    try {
      held = await this.pool.acquire(model, signal);
    } catch (error) {
      throw toHttpError(error);
    }
    const { entry, loadMs } = held;
    try {
      const contextSize = entry.loaded.context.contextSize;
      if (job.maxTokens !== undefined && job.maxTokens > contextSize && !job.maxTokensPastContext) {
        throw new HttpError(400, `"${job.maxTokensParam}" is ${job.maxTokens}, more than the ${contextSize}-token context of each slot`, {
          param: job.maxTokensParam,
          type: "invalid_request_error",
        });
      }
      const request = this.requestOf(job, contextSize, entry.loaded.summary.hasChatTemplate);
      // The prompt scored on its own context first (legacy completions' echo with logprobs), then generated from.
      const promptLogprobs =
        job.promptLogprobs !== undefined
          ? await this.pool.scorePrompt(entry, request, job.promptLogprobs.top, signal).catch((error: unknown) => {
              if (timeout?.aborted) throw this.timedOut();
              throw toHttpError(error);
            })
          : undefined;
      const generated = await entry.scheduler
        .generate(request, {
          signal,
          ...(job.onText ? { onText: job.onText } : {}),
          ...(job.onThought ? { onThought: job.onThought } : {}),
          ...(job.onCallArguments ? { onCallArguments: job.onCallArguments } : {}),
          onStart: (_slot, prompt) =>
            job.onStart?.({
              ...prompt,
              ...(promptLogprobs !== undefined ? { promptLogprobs } : {}),
              ...(job.promptTokenIds !== undefined ? { promptText: promptTextOf(entry.loaded, job.promptTokenIds) } : {}),
            }),
        })
        .catch((error: unknown) => {
          if (timeout?.aborted) throw this.timedOut();
          throw toHttpError(error);
        });
      const result = promptLogprobs !== undefined ? { ...generated, promptLogprobs } : generated;
      // Cut short by a shutdown: an error (an event, once streaming), so no client takes it for a whole answer.
      if (result.stopReason === "abort" && this.options.shutdown.aborted && !job.signal.aborted) {
        throw new HttpError(503, "the server is shutting down: this answer was cut short", { type: "server_busy", code: "shutting_down" });
      }
      this.options.metrics.generation(model.name, { ...result, ttftMs: result.timings.ttftMs });
      return { model, entry, request, result, loadMs, timedOut: timeout?.aborted === true && !job.signal.aborted };
    } finally {
      this.pool.release(entry, job.keepAliveMs);
    }
  }

  /** A job's prompt as the model would see it, in tokens (Anthropic's count_tokens): loads the model, generates nothing. */
  async countPromptTokens(job: Omit<Job, "signal">): Promise<number> {
    const held = await this.hold(job.model, job.modelParam, job.keepAliveMs);
    try {
      const request = this.requestOf(job, held.entry.loaded.context.contextSize, held.entry.loaded.summary.hasChatTemplate);
      const tokens = await promptTokensOf(held.entry.loaded, request).catch((error: unknown) => {
        throw toHttpError(error);
      });
      return tokens.length;
    } finally {
      held.release();
    }
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Engine errors as HTTP answers: what the client got wrong is 4xx, a busy server 503, the rest 500. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof QueueFullError) {
    return new HttpError(503, "server busy: every slot is busy and the queue is full; retry later", {
      type: "server_busy",
      code: "queue_full",
      headers: { "retry-after": String(error.retryAfterSeconds) },
    });
  }
  if (error instanceof PoolFullError) {
    return new HttpError(503, error.message, { type: "server_busy", code: "max_models", headers: { "retry-after": "5" } });
  }
  // serve --rpc: a worker that is unreachable, busy with another client or of another version, named by its pre-flight.
  if (error instanceof RpcWorkerError) {
    return new HttpError(503, error.hint ? `${error.message}. ${error.hint}` : error.message, { type: "server_busy", code: `rpc_worker_${error.reason}`, headers: { "retry-after": "5" } });
  }
  if (error instanceof InsufficientMemoryError) return new HttpError(507, error.message, { type: "insufficient_memory", code: "model_too_large" });
  if (error instanceof PromptTooLongError) {
    // OpenAI's code, which client libraries (LangChain, LiteLLM) read to shorten and retry.
    const remedy = error.evenTruncated
      ? `its system messages and last message alone do not fit: raise lmrun serve --ctx or shorten the last message`
      : `raise lmrun serve --ctx, shorten the ${error.field}, or ask for truncation (ollama: "truncate": true)`;
    return new HttpError(400, `${error.message}; ${remedy}`, {
      type: "invalid_request_error",
      code: "context_length_exceeded",
      param: error.field,
    });
  }
  if (error instanceof AbortedWhileQueuedError) return new HttpError(499, error.message, { type: "cancelled" });
  if (error instanceof TokenIdsError) return new HttpError(400, `${error.message}. ${error.hint}`, { type: "invalid_request_error", param: error.field });
  if (error instanceof LmrunError && error.exitCode === 2) return new HttpError(400, error.hint ? `${error.message}. ${error.hint}` : error.message, { type: "invalid_request_error" });
  if (error instanceof LmrunError) return new HttpError(500, error.message, { type: "server_error" });
  return new HttpError(500, `internal error: ${error instanceof Error ? error.message : String(error)}`, { type: "server_error" });
}
