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
 * Default thread count. Measured on the 2-core machines this was built on (see README, "Threads"):
 * generation is memory-bound and the Node main thread needs a core of its own between tokens,
 * so using every core makes token generation several times slower. We leave one core free.
 */
export function defaultThreads(cpuCount: number = availableCores()): number {
  if (cpuCount <= 2) return 1;
  if (cpuCount <= 4) return cpuCount - 1;
  return Math.max(1, Math.min(cpuCount - 2, 16));
}

export function availableCores(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}
