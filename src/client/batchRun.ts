import type { StopReason } from "../engine/types.js";
import type { WireTokenLogprob } from "../server/logprobs.js";
import type { BatchItem } from "./batchFile.js";

/**
 * Runs a batch's requests `parallel` at a time through an Answerer (in-process slot scheduler, or a
 * running server), hands each finished answer or failure to onRecord as it comes (in completion
 * order), and reports progress. A failed request does not stop the others; an aborted signal stops
 * starting new ones and cancels those running (their partial answers are not recorded).
 */

export interface BatchAnswer {
  text: string;
  /** A thinking model's thoughts, apart from the text. */
  thinking?: string;
  /** The answer's tokens with their log-probabilities, when the line asked (ollama's form). */
  logprobs?: WireTokenLogprob[];
  promptTokens: number;
  generatedTokens: number;
  stopReason: StopReason;
  seed: number | undefined;
  timings: {
    queueMs: number | null;
    ttftMs: number | null;
    promptMs: number | null;
    generationMs: number | null;
    totalMs: number;
    generationTokensPerSecond: number | null;
  };
}

export type Answerer = (item: BatchItem, signal: AbortSignal) => Promise<BatchAnswer>;

export type BatchRecord =
  | ({ id: string | number } & BatchAnswer)
  | { id: string | number; line: number; error: string };

export interface BatchProgress {
  total: number;
  done: number;
  failed: number;
  running: number;
  generatedTokens: number;
  elapsedMs: number;
  /** Seconds left at the rate so far; undefined before the first answer. */
  etaSeconds: number | undefined;
}

export interface BatchSummary extends BatchProgress {
  interrupted: boolean;
}

export async function runBatch(
  items: BatchItem[],
  answer: Answerer,
  options: {
    parallel: number;
    signal: AbortSignal;
    onRecord: (record: BatchRecord) => Promise<void>;
    onProgress?: (progress: BatchProgress) => void;
    describeError?: (error: unknown) => string;
  },
): Promise<BatchSummary> {
  const startedAt = performance.now();
  const stopper = new AbortController();
  const onAbort = () => stopper.abort(options.signal.reason);
  options.signal.addEventListener("abort", onAbort, { once: true });
  if (options.signal.aborted) stopper.abort(options.signal.reason);
  const state = { total: items.length, done: 0, failed: 0, running: 0, generatedTokens: 0 };
  const progress = (): BatchProgress => {
    const elapsedMs = performance.now() - startedAt;
    const finished = state.done + state.failed;
    const rate = finished > 0 ? finished / elapsedMs : 0;
    return { ...state, elapsedMs, etaSeconds: rate > 0 ? (state.total - finished) / rate / 1000 : undefined };
  };
  let next = 0;
  const worker = async () => {
    while (!stopper.signal.aborted && next < items.length) {
      const item = items[next++]!;
      state.running++;
      options.onProgress?.(progress());
      let record: BatchRecord | undefined;
      try {
        const result = await answer(item, stopper.signal);
        if (result.stopReason !== "abort" && !stopper.signal.aborted) {
          record = { id: item.id, ...result };
          state.done++;
          state.generatedTokens += result.generatedTokens;
        }
      } catch (error) {
        if (!stopper.signal.aborted) {
          record = { id: item.id, line: item.line, error: options.describeError?.(error) ?? (error as Error).message };
          state.failed++;
        }
      } finally {
        state.running--;
      }
      if (record !== undefined) {
        try {
          await options.onRecord(record);
        } catch (error) {
          // An answer that cannot be kept (a full disk): stop everything rather than lose more.
          stopper.abort(error);
          throw error;
        }
      }
      options.onProgress?.(progress());
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.parallel, items.length)) }, worker));
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
  return { ...progress(), interrupted: stopper.signal.aborted };
}
