import type { BenchParams, BenchRecord } from "./types.js";

/**
 * `--tune`: a small sweep, then the fastest settings. Threads are chosen on generation speed (what a
 * chat user waits on; on small machines more threads often make it slower), the batch size on prompt
 * speed at the chosen thread count.
 */

export interface TuneResult {
  threads: number;
  batchSize: number;
  genTs: number;
  promptTs: number;
}

export function tuneCandidates(cores: number): { threads: number[]; batchSizes: number[] } {
  const threads = new Set<number>([1]);
  for (let t = 2; t <= cores; t *= 2) threads.add(t);
  threads.add(Math.max(1, cores - 1));
  threads.add(cores);
  return { threads: [...threads].sort((a, b) => a - b), batchSizes: [128, 256, 512] };
}

/** The sweep --tune runs: short tests, three repetitions; -t, -b, -p, -n and -r narrow or change it. */
export function tuneParams(model: string, cores: number, given: Partial<Pick<BenchParams, "nThreads" | "nBatch" | "nPrompt" | "nGen" | "repetitions">> = {}): BenchParams {
  const candidates = tuneCandidates(cores);
  return {
    models: [model],
    nPrompt: given.nPrompt ?? [256],
    nGen: given.nGen ?? [64],
    nPg: [],
    nDepth: [0],
    nBatch: given.nBatch ?? candidates.batchSizes,
    nUbatch: [512],
    typeK: ["f16"],
    typeV: ["f16"],
    nThreads: given.nThreads ?? candidates.threads,
    nGpuLayers: [-1],
    flashAttn: [-1],
    repetitions: given.repetitions ?? 3,
    warmup: true,
  };
}

/** Picks threads by tg speed, then n_batch by pp speed at those threads. Null without both kinds of rows. */
export function pickFastest(records: readonly BenchRecord[]): TuneResult | null {
  const gen = records.filter((r) => r.n_gen > 0 && r.n_prompt === 0);
  const prompt = records.filter((r) => r.n_prompt > 0 && r.n_gen === 0);
  if (gen.length === 0 || prompt.length === 0) return null;
  // tg does not depend on n_batch: average over the batch sizes for each thread count.
  const byThreads = new Map<number, number[]>();
  for (const r of gen) byThreads.set(r.n_threads, [...(byThreads.get(r.n_threads) ?? []), r.avg_ts]);
  let bestThreads = gen[0]!.n_threads;
  let bestGen = -1;
  for (const [threads, values] of byThreads) {
    const avg = values.reduce((a, b) => a + b, 0) / values.length;
    if (avg > bestGen) {
      bestGen = avg;
      bestThreads = threads;
    }
  }
  const candidates = prompt.filter((r) => r.n_threads === bestThreads);
  const bestPrompt = (candidates.length > 0 ? candidates : prompt).reduce((a, b) => (b.avg_ts > a.avg_ts ? b : a));
  return { threads: bestThreads, batchSize: bestPrompt.n_batch, genTs: bestGen, promptTs: bestPrompt.avg_ts };
}
