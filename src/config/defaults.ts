import os from "node:os";

/** Built-in sampling defaults: llama.cpp's own (common/common.h). */
export const DEFAULT_SAMPLING = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1.0,
} as const;

export const DEFAULT_MAX_TOKENS = 512;

/**
 * Default threads for token generation (prompt batches use every core, see engine/threads.ts).
 * Measured on 2-core machines (README, "Threads"): the binding starts a fresh ggml thread for
 * every decode, and for one token at a time a second thread made generation 2-3x slower than
 * one thread, while llama-bench (persistent pool) gains ~10% from it. Above 2 cores we have no
 * measurements yet and use half the cores; `lmrun bench --tune` measures and saves the best.
 */
export function defaultThreads(cpuCount: number = availableCores()): number {
  if (cpuCount <= 2) return 1;
  return Math.max(1, Math.min(Math.floor(cpuCount / 2), 16));
}

export function availableCores(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}
