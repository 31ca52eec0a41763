import type { ChunkScorer, TargetScores } from "../engine/scoring.js";
import { ABANDONED, isTerminated, unlessTerminated } from "../errors.js";
import type { ChunkPlan } from "./corpus.js";
import { KldBaseReader, KldBaseWriter } from "./kldFile.js";
import { KldAccumulator, kldRowSlots, NllAccumulator, nllFromLogitSummary, quantizeLogProbRow } from "./math.js";
import type { ChunkEvent } from "./types.js";

/**
 * The perplexity jobs. They stop between chunks when the signal aborts and then report
 * what was done with partial: true, so that Ctrl-C never passes for a finished run. Terminated
 * (SIGTERM), they do not wait for the chunks being scored either.
 */

export interface JobOptions {
  signal?: AbortSignal;
  onChunk?: (event: ChunkEvent) => void;
}

export interface PerplexityRun {
  ppl: number;
  pplError: number;
  tokensScored: number;
  chunks: number;
  top1Accuracy: number;
  seconds: number;
  partial: boolean;
  /** Each scored position's NLL, in order (only with collectNll). */
  nllValues?: Float64Array;
}

function chunkOf(tokens: Uint32Array, plan: { ctx: number }, index: number): Uint32Array {
  return tokens.subarray(index * plan.ctx, (index + 1) * plan.ctx);
}

function progress(onChunk: JobOptions["onChunk"], done: number, chunks: number, chunksPerPass: number, ppl: number, startedAt: number): void {
  if (!onChunk) return;
  const elapsedMs = performance.now() - startedAt;
  // Chunks finish a pass at a time, so the estimate counts whole passes.
  const passesDone = Math.ceil(done / chunksPerPass);
  const etaMs = (elapsedMs / passesDone) * (Math.ceil(chunks / chunksPerPass) - passesDone);
  onChunk({ chunk: done, chunks, chunksPerPass, ppl, elapsedMs, etaMs });
}

export type ChunkOutcome = Float32Array[] | TargetScores;

function scoreChunks(scorer: ChunkScorer, chunks: Uint32Array[], first: number, fullRows: boolean): Promise<ChunkOutcome[]> {
  return fullRows
    ? Promise.all(chunks.map((chunk) => scorer.scoreFull(chunk, first)))
    : Promise.all(chunks.map((chunk) => scorer.scoreTargets(chunk, first)));
}

/** The first pass, started on the text's first tokens while the whole text is still being tokenised. */
export interface EarlyPass {
  tokens: Uint32Array;
  chunks: number;
  outcomes: Promise<ChunkOutcome[]>;
  startedAt: number;
}

/**
 * Tokenises just enough of the text for the first pass and starts scoring it, so that tokenising
 * the whole text (seconds for wiki.test.raw, on this thread) overlaps with evaluation (on
 * llama.cpp's threads). runPerplexity uses the result only if the whole text's tokens begin with
 * the same ones; the 64 tokens before the cut are never used, so a word cut in half cannot leak in.
 */
export function startEarlyPass(scorer: ChunkScorer, text: string, ctx: number, maxChunks: number | undefined, fullRows: boolean): EarlyPass | undefined {
  const chunks = Math.min(scorer.parallel, maxChunks ?? scorer.parallel);
  const need = Math.max(chunks, 2) * ctx;
  for (let chars = need * 4; chars < text.length; chars *= 2) {
    const tokens = scorer.tokenize(text.slice(0, chars));
    if (tokens.length < need + 64) continue;
    const startedAt = performance.now();
    const prefixChunks = range(0, chunks).map((c) => tokens.subarray(c * ctx, (c + 1) * ctx));
    const outcomes = scoreChunks(scorer, prefixChunks, Math.floor(ctx / 2), fullRows);
    outcomes.catch(() => {}); // whoever awaits it sees the error
    return { tokens: tokens.subarray(0, chunks * ctx), chunks, outcomes, startedAt };
  }
  return undefined;
}

function startsWith(tokens: Uint32Array, prefix: Uint32Array): boolean {
  if (tokens.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (tokens[i] !== prefix[i]) return false;
  return true;
}

/** llama-perplexity's perplexity(); with a base writer also its --kl-divergence-base output. */
export async function runPerplexity(
  scorer: ChunkScorer,
  tokens: Uint32Array,
  plan: ChunkPlan,
  options: JobOptions & { baseWriter?: KldBaseWriter; collectNll?: boolean; earlyPass?: EarlyPass | undefined } = {},
): Promise<PerplexityRun> {
  let early = options.earlyPass;
  if (early && !(early.chunks === Math.min(scorer.parallel, plan.chunks) && startsWith(tokens, early.tokens))) {
    await early.outcomes.catch(() => undefined);
    early = undefined;
  }
  const accumulator = new NllAccumulator();
  const nllValues = options.collectNll ? new Float64Array(plan.chunks * plan.scoredPerChunk) : undefined;
  const nll = {
    add(value: number) {
      if (nllValues) nllValues[accumulator.count] = value;
      accumulator.add(value);
    },
  };
  let correctTop = 0;
  let done = 0;
  const startedAt = early?.startedAt ?? performance.now();
  const slots = kldRowSlots(scorer.vocabSize);
  try {
    for (let group = 0; group < plan.chunks && options.signal?.aborted !== true; group += scorer.parallel) {
      // Up to `parallel` chunks at once, as llama-perplexity's n_seq; results are summed in chunk order.
      const indexes = range(group, Math.min(group + scorer.parallel, plan.chunks));
      const chunks = indexes.map((c) => chunkOf(tokens, plan, c));
      const outcomes = await unlessTerminated(
        group === 0 && early ? early.outcomes : scoreChunks(scorer, chunks, plan.first, options.baseWriter !== undefined),
        options.signal,
      );
      if (outcomes === ABANDONED) break;
      for (const [i, chunk] of chunks.entries()) {
        await addChunk(chunk, outcomes[i]!);
        done += 1;
        progress(options.onChunk, done, plan.chunks, scorer.parallel, accumulator.ppl, startedAt);
      }
    }
  } finally {
    // Interrupted before the first group: the early pass may still be decoding; the model must outlive it
    // (terminated: the process dies with it).
    if (!isTerminated(options.signal)) await early?.outcomes.catch(() => undefined);
  }

  async function addChunk(chunk: Uint32Array, outcome: ChunkOutcome): Promise<void> {
    if (Array.isArray(outcome)) {
      const rows = outcome;
      const stored = new Uint16Array(rows.length * slots);
      rows.forEach((row, k) => {
        const target = chunk[plan.first + k + 1]!;
        nll.add(quantizeLogProbRow(row, target, stored.subarray(k * slots, (k + 1) * slots)));
        if (argmaxOf(row) === target) correctTop += 1;
      });
      await options.baseWriter!.writeRows(stored);
    } else {
      const scores = outcome;
      for (let k = 0; k < scores.argmax.length; k++) {
        nll.add(nllFromLogitSummary(scores.targetLogit[k]!, scores.maxLogit[k]!, scores.sumExp[k]!));
        if (scores.argmax[k] === chunk[plan.first + k + 1]) correctTop += 1;
      }
    }
  }
  return {
    ppl: accumulator.ppl,
    pplError: accumulator.pplError,
    tokensScored: accumulator.count,
    chunks: done,
    top1Accuracy: correctTop / accumulator.count,
    seconds: (performance.now() - startedAt) / 1000,
    partial: done < plan.chunks,
    ...(nllValues ? { nllValues: nllValues.subarray(0, accumulator.count) } : {}),
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

export interface KlDivergenceRun {
  accumulator: KldAccumulator;
  chunks: number;
  seconds: number;
  partial: boolean;
}

/** llama-perplexity --kl-divergence: the base file gives the tokens, the layout and the base distributions. */
export async function runKlDivergence(scorer: ChunkScorer, reader: KldBaseReader, options: JobOptions = {}): Promise<KlDivergenceRun> {
  const { ctx, chunks, tokens, vocabSize } = reader.header;
  const first = Math.floor(ctx / 2);
  const slots = kldRowSlots(vocabSize);
  const acc = new KldAccumulator();
  const startedAt = performance.now();
  let done = 0;
  for (let group = 0; group < chunks && options.signal?.aborted !== true; group += scorer.parallel) {
    const batch = range(group, Math.min(group + scorer.parallel, chunks)).map((c) => chunkOf(tokens, { ctx }, c));
    const results = await unlessTerminated(Promise.all(batch.map((chunk) => scorer.scoreFull(chunk, first))), options.signal);
    if (results === ABANDONED) break;
    for (const [i, chunk] of batch.entries()) {
      const base = await reader.readChunk();
      results[i]!.forEach((row, k) => acc.addRow(row, base.subarray(k * slots, (k + 1) * slots), chunk[first + k + 1]!));
      done += 1;
      progress(options.onChunk, done, chunks, scorer.parallel, Math.exp(acc.sumNll / acc.count), startedAt);
    }
  }
  return { accumulator: acc, chunks: done, seconds: (performance.now() - startedAt) / 1000, partial: done < chunks };
}
