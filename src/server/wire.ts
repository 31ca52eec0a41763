/**
 * What travels between `lmrun serve` and lmrun's own client (src/client), beyond ollama's API.
 * Types and constants only: the client imports this file, so it must stay free of node-llama-cpp.
 *
 * Requests use ollama's /api/generate and /api/chat. lmrun-only settings ride in ollama's own
 * fields where it has one (`raw`, `format`, `options.stop`, `options.num_predict`, ...), else in
 * `options.lmrun_*` (below). The FINAL object of an answer (done: true) carries `lmrun`, the
 * fields `lmrun run --json` prints, so a run through the server reports what an in-process run does.
 */

export type WireStopReason = "eos" | "maxTokens" | "stop" | "abort";

export interface WireSampling {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  seed: number | undefined;
  maxTokens: number;
  stop: string[];
}

export interface LmrunFinalExtension {
  stopReason: WireStopReason;
  promptTokens: number;
  generatedTokens: number;
  truncatedPromptTokens: number;
  /** Whether the model's chat template was applied (false: plain completion). */
  chatTemplate: boolean;
  seed: number | undefined;
  sampling: WireSampling;
  load: {
    contextSize: number;
    /** The -c asked for when llama.cpp raised it to its smallest context, else null. */
    requestedContextSize?: number | null;
    threads: number;
    batchThreads: number;
    gpu: string | false;
    gpuLayers: number;
    threadpool: "persistent" | "per-decode";
    parallel: number;
  };
  model: { path: string; fileName: string; name: string };
  /** From the request's arrival at the model to its first token (queue wait excluded, prompt evaluation included). */
  ttftMs: number | null;
  /** Time this request spent loading the model (0 when it was warm). */
  loadMs: number;
  /** Time spent waiting for a free slot. */
  queueMs: number;
  promptMs: number | null;
  generationMs: number | null;
  promptTokensPerSecond: number | null;
  generationTokensPerSecond: number | null;
  /** Generation time as in-process `run` counts it (prompt + generation, no load). */
  totalMs: number;
  /** Prompt tokens found in the slot's cache and not evaluated again. */
  cachedPromptTokens: number;
  slot: number;
}

/** lmrun-only request options, inside ollama's `options` object. */
export interface LmrunRequestOptions {
  /** Keep the end of an overlong prompt instead of answering 400 (run --truncate). */
  lmrun_truncate?: boolean;
}
