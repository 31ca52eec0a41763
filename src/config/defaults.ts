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
 * Without lmrun's threadpool shim the binding starts fresh ggml worker threads for every decode,
 * which only pays off when a token is enough work to share. Measured (README, "Threads"):
 * - 2-core machine, per-decode threads: a second thread made generation 2-3x slower, whatever the
 *   model; with the shim's persistent pool it is faster (135M model: 136-162 t/s vs 116-118 with 1;
 *   stories260K: about the same to +50%), as with llama-bench;
 * - a 16-core machine (per-decode threads): stories260K (0.4 MB) 1,710 t/s with 1 thread, 253 with 8;
 *   a 20M-parameter F32 model (80 MB) 405 t/s with 1, 1,070 with 8, 650 with 16; a 162M F32 model
 *   (650 MB) 22 → 116 (8) → 151 (16). Not yet measured there with the persistent pool.
 * So: on 2 cores or fewer, every core with the persistent pool and 1 thread without it; on bigger
 * machines 1 thread for models under SMALL_MODEL_BYTES, otherwise half the cores.
 * `lmrun bench --tune` measures the best for a model and saves it.
 */
export const SMALL_MODEL_BYTES = 32 * 1024 * 1024;

export function defaultThreads(cpuCount: number = availableCores(), modelBytes?: number, persistentPool = false): number {
  if (cpuCount <= 2) return persistentPool ? Math.max(1, cpuCount) : 1;
  // Between 0.4 MB (1 thread best) and 80 MB (8 best) nothing was measured; 32 MB is a guess in that gap.
  if (modelBytes !== undefined && modelBytes < SMALL_MODEL_BYTES) return 1;
  return Math.max(1, Math.min(Math.floor(cpuCount / 2), 16));
}

export function availableCores(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}
