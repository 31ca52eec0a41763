import type { GenerationTimings, SamplingOptions, StopReason } from "../engine/types.js";
import type { ServerClient } from "./http.js";
import type { GenerateBody, LmrunExtension, StreamChunk, WireLoad, WireOptions } from "./wire.js";

/**
 * `lmrun run` through a running server: one POST /api/generate, streamed. The answer is reported in
 * the very shape in-process `run` reports (RunOutcome), from the final object's `lmrun` extension, so
 * that --json and --stats print the same fields whichever way the text was made.
 */

export interface RunSpec {
  prompt: string;
  systemPrompt?: string | undefined;
  /** --raw: plain completion, no chat template. */
  raw: boolean;
  stop: string[];
  jsonSchema?: object | "json" | undefined;
  truncate: boolean;
  sampling: SamplingOptions & { maxTokens: number };
  /** false (--no-think): a thinking model answers without thinking. */
  think?: boolean | undefined;
}

/** What `run` prints about one answer, in-process or served. */
export interface RunOutcome {
  text: string;
  model: { path: string; fileName: string; name: string };
  promptTokens: number;
  generatedTokens: number;
  stopReason: StopReason;
  truncatedPromptTokens: number;
  chatTemplate: boolean;
  loadMs: number;
  timings: GenerationTimings;
  load: WireLoad;
  /** A thinking model's thoughts, apart from the text. */
  thinking?: string | undefined;
}

export function wireOptions(sampling: SamplingOptions & { maxTokens: number }, stop: string[]): WireOptions {
  return {
    temperature: sampling.temperature,
    top_k: sampling.topK,
    top_p: sampling.topP,
    min_p: sampling.minP,
    repeat_penalty: sampling.repeatPenalty,
    ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
    num_predict: sampling.maxTokens,
    ...(stop.length > 0 ? { stop } : {}),
  };
}

export function generateBody(model: string, spec: RunSpec): GenerateBody {
  return {
    model,
    prompt: spec.prompt,
    // Plain completion has no system prompt (run warns); ollama refuses the pair.
    ...(spec.systemPrompt !== undefined && !spec.raw ? { system: spec.systemPrompt } : {}),
    ...(spec.raw ? { raw: true } : {}),
    stream: true,
    ...(spec.jsonSchema !== undefined ? { format: spec.jsonSchema } : {}),
    options: wireOptions(spec.sampling, spec.stop),
    truncate: spec.truncate,
    ...(spec.think !== undefined ? { think: spec.think } : {}),
  };
}

export async function runThroughServer(
  client: ServerClient,
  model: string,
  spec: RunSpec,
  hooks: { onText?: ((text: string) => void) | undefined; onThought?: ((text: string) => void) | undefined; signal?: AbortSignal | undefined },
): Promise<RunOutcome> {
  let text = "";
  let thinking = "";
  const final = await client.stream(
    "/api/generate",
    generateBody(model, spec),
    (chunk) => {
      if (chunk.thinking) {
        thinking += chunk.thinking;
        hooks.onThought?.(chunk.thinking);
      }
      const piece = chunk.response ?? "";
      if (piece.length === 0) return;
      text += piece;
      hooks.onText?.(piece);
    },
    hooks.signal,
  );
  return { ...outcomeOf(final, text, client.url), ...(thinking !== "" ? { thinking } : {}) };
}

/** The final object (done: true) read as run reports it; without lmrun's extension (an ollama server) from ollama's own fields. */
export function outcomeOf(final: StreamChunk, text: string, url: string): RunOutcome {
  const ext = final.lmrun;
  const promptTokens = ext?.promptTokens ?? final.prompt_eval_count ?? 0;
  const generatedTokens = ext?.generatedTokens ?? final.eval_count ?? 0;
  return {
    text,
    model: ext?.model ?? { path: "", fileName: "", name: final.model ?? "" },
    promptTokens,
    generatedTokens,
    stopReason: ext?.stopReason ?? stopReasonOf(final.done_reason),
    truncatedPromptTokens: ext?.truncatedPromptTokens ?? 0,
    chatTemplate: ext?.chatTemplate ?? true,
    loadMs: ext?.loadMs ?? nsToMs(final.load_duration) ?? 0,
    timings: ext !== undefined ? timingsOf(ext) : timingsFromOllama(final, promptTokens, generatedTokens),
    // The fields in-process run prints, no more (the server's slot count is `lmrun ps`'s business).
    load: ext !== undefined ? pickLoad(ext.load) : { contextSize: final.context_length ?? 0, threads: 0, batchThreads: 0, gpu: false, gpuLayers: 0, threadpool: `served by ${url}` },
  };
}

function timingsOf(ext: LmrunExtension): GenerationTimings {
  return {
    ttftMs: ext.ttftMs,
    promptMs: ext.promptMs,
    generationMs: ext.generationMs,
    totalMs: ext.totalMs,
    promptTokensPerSecond: ext.promptTokensPerSecond,
    generationTokensPerSecond: ext.generationTokensPerSecond,
  };
}

function pickLoad(load: LmrunExtension["load"]): WireLoad {
  // The same fields as an in-process run's --json (a tuned setting is the server's business: null here).
  return {
    contextSize: load.contextSize,
    requestedContextSize: load.requestedContextSize ?? null,
    threads: load.threads,
    batchThreads: load.batchThreads,
    gpu: load.gpu,
    gpuLayers: load.gpuLayers,
    threadpool: load.threadpool,
    tuned: null,
  };
}

function stopReasonOf(doneReason: string | undefined): StopReason {
  if (doneReason === "length") return "maxTokens";
  if (doneReason === "abort") return "abort";
  return "eos";
}

function nsToMs(ns: number | undefined): number | undefined {
  return typeof ns === "number" ? ns / 1e6 : undefined;
}

/** ollama's durations: prompt_eval_duration is the prompt pass (TTFT), eval_duration the generation after it. */
function timingsFromOllama(final: StreamChunk, promptTokens: number, generatedTokens: number): GenerationTimings {
  const promptMs = nsToMs(final.prompt_eval_duration) ?? null;
  const generationMs = nsToMs(final.eval_duration) ?? null;
  return {
    ttftMs: promptMs,
    promptMs,
    generationMs,
    totalMs: nsToMs(final.total_duration) ?? 0,
    promptTokensPerSecond: promptMs !== null && promptMs > 0 ? promptTokens / (promptMs / 1000) : null,
    generationTokensPerSecond: generationMs !== null && generationMs > 0 && generatedTokens > 1 ? (generatedTokens - 1) / (generationMs / 1000) : null,
  };
}
