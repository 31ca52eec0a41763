import type { SamplingOptions } from "../engine/types.js";
import type { BatchItem } from "./batchFile.js";
import type { Answerer, BatchAnswer } from "./batchRun.js";
import { ServerBusyError, type ServerClient } from "./http.js";
import { wireOptions } from "./run.js";
import type { PsEntry, StreamChunk } from "./wire.js";

/**
 * A batch's requests sent to a running server, several at once (its slots batch them together).
 * Non-streaming: one JSON answer per request. A 503 (slots and queue full) is waited out as its
 * Retry-After says; any other failure is that request's error line.
 */

export interface BatchDefaults {
  sampling: SamplingOptions & { maxTokens: number };
  stop: string[];
  system?: string | undefined;
  raw: boolean;
  /** false (--no-think): thinking models answer without thinking, unless a request says otherwise. */
  think?: boolean | undefined;
}

/** Loads the model on the server (ollama's load request) and returns how many slots it has (undefined when it does not say). */
export async function prepareServerModel(client: ServerClient, model: string, signal: AbortSignal): Promise<number | undefined> {
  await client.json("POST", "/api/generate", { model, stream: false }, signal);
  const ps = await client.json<{ models?: PsEntry[] }>("GET", "/api/ps", undefined, signal);
  const entry = (ps.models ?? []).find((m) => m.name === model || m.model === model);
  const parallel = (entry?.lmrun as { parallel?: unknown } | undefined)?.parallel;
  return typeof parallel === "number" && parallel > 0 ? parallel : undefined;
}

export function remoteAnswerer(client: ServerClient, model: string, defaults: BatchDefaults): Answerer {
  return async (item, signal) => {
    const { path, body } = requestFor(model, item, defaults);
    for (;;) {
      try {
        const final = await client.json<StreamChunk>("POST", path, body, signal);
        return answerOf(final, item, body.options.seed);
      } catch (error) {
        if (!(error instanceof ServerBusyError) || signal.aborted) throw error;
        await sleep(error.retryAfterSeconds * 1000, signal);
      }
    }
  };
}

/** The sampling of one item: its own fields over the command's. */
export function itemSampling(item: BatchItem, defaults: BatchDefaults): { sampling: SamplingOptions & { maxTokens: number }; stop: string[] } {
  const s = item.sampling;
  return {
    sampling: {
      temperature: s.temperature ?? defaults.sampling.temperature,
      topK: s.topK ?? defaults.sampling.topK,
      topP: s.topP ?? defaults.sampling.topP,
      minP: s.minP ?? defaults.sampling.minP,
      repeatPenalty: s.repeatPenalty ?? defaults.sampling.repeatPenalty,
      // Every answer records its seed, so any one of them can be made again.
      seed: s.seed ?? defaults.sampling.seed ?? Math.floor(Math.random() * 2 ** 32),
      maxTokens: s.maxTokens ?? defaults.sampling.maxTokens,
    },
    stop: s.stop ?? defaults.stop,
  };
}

function requestFor(model: string, item: BatchItem, defaults: BatchDefaults) {
  const { sampling, stop } = itemSampling(item, defaults);
  const options = wireOptions(sampling, stop);
  // Only "off" is sent: "on" is every model's default, and ollama's API refuses it for a model that cannot
  // think, which a batch run in-process does not (a line's `think: true` means "as the model does").
  const thinking = (item.think ?? defaults.think) === false ? { think: false } : {};
  const logprobs = item.logprobs !== undefined ? { logprobs: true, top_logprobs: item.logprobs.top } : {};
  if (item.messages !== undefined) {
    // A conversation too long for the context fails, as it does in-process (ollama's default would cut it).
    return { path: "/api/chat", body: { model, messages: item.messages, stream: false, options, truncate: false, ...thinking, ...logprobs } };
  }
  const system = item.system ?? defaults.system;
  return {
    path: "/api/generate",
    body: { model, prompt: item.prompt ?? "", ...(system !== undefined && !defaults.raw ? { system } : {}), ...(defaults.raw ? { raw: true } : {}), stream: false, options, truncate: false, ...thinking, ...logprobs },
  };
}

function answerOf(final: StreamChunk, item: BatchItem, seed: number | undefined): BatchAnswer {
  const ext = final.lmrun;
  const text = item.messages !== undefined ? (final.message?.content ?? "") : (final.response ?? "");
  const thinking = item.messages !== undefined ? final.message?.thinking : final.thinking;
  return {
    text,
    ...(thinking !== undefined ? { thinking } : {}),
    ...(item.logprobs !== undefined ? { logprobs: final.logprobs ?? [] } : {}),
    promptTokens: ext?.promptTokens ?? final.prompt_eval_count ?? 0,
    generatedTokens: ext?.generatedTokens ?? final.eval_count ?? 0,
    stopReason: ext?.stopReason ?? (final.done_reason === "length" ? "maxTokens" : "eos"),
    seed,
    timings: {
      queueMs: ext?.queueMs ?? null,
      ttftMs: ext?.ttftMs ?? null,
      promptMs: ext?.promptMs ?? null,
      generationMs: ext?.generationMs ?? null,
      totalMs: ext?.totalMs ?? (final.total_duration ?? 0) / 1e6,
      generationTokensPerSecond: ext?.generationTokensPerSecond ?? null,
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
