import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LmrunError, UsageError } from "../errors.js";
import type { ChunkScorer } from "../engine/scoring.js";
import { planChunks } from "./corpus.js";
import { KldBaseReader, KldBaseWriter } from "./kldFile.js";
import { kldStatistics, pairedPplRatio } from "./math.js";
import { runKlDivergence, runPerplexity, startEarlyPass, type JobOptions } from "./perplexity.js";
import type { ComparisonResult, EvaluatedModel, PerplexityResult } from "./types.js";

/**
 * The three ways to run `lmrun perplexity`, independent of the CLI: the caller supplies how to
 * load a model (with its spinner and flags) and receives result objects (the --json schema).
 */

export interface ModelHandle {
  scorer: ChunkScorer;
  model: EvaluatedModel;
  loadSeconds: number;
  threads: number;
  batchSize: number;
  trainContextSize: number;
  dispose(): Promise<void>;
}

export type ModelLoader = (ref: string, ctx: number) => Promise<ModelHandle>;

export interface EvalSettings {
  ctx: number;
  chunks?: number | undefined;
  onWarning?: (message: string) => void;
  /** Called when a model starts evaluating (for progress lines). */
  onStart?: (model: EvaluatedModel, chunks: number) => void;
}

/** Statistics below this many scored tokens are noise; llama-perplexity skips them too. */
export const MIN_KLD_TOKENS = 100;

function resultFrom(handle: ModelHandle, ctx: number, chunksPlanned: number, textTokens: number, run: Awaited<ReturnType<typeof runPerplexity>>): PerplexityResult {
  return {
    model: handle.model,
    ppl: run.ppl,
    pplError: run.pplError,
    tokensScored: run.tokensScored,
    chunks: run.chunks,
    chunksPlanned,
    ctx,
    batchSize: handle.batchSize,
    threads: handle.threads,
    textTokens,
    top1Accuracy: run.top1Accuracy,
    seconds: run.seconds,
    loadSeconds: handle.loadSeconds,
    partial: run.partial,
  };
}

function warnIfBeyondTraining(handle: ModelHandle, ctx: number, settings: EvalSettings): void {
  if (ctx > handle.trainContextSize) {
    settings.onWarning?.(`${handle.model.fileName} was trained on only ${handle.trainContextSize} context tokens (${ctx} given)`);
  }
}

/** Plain perplexity; with baseFile also writes llama-perplexity's --kl-divergence-base file. */
export async function evaluatePerplexity(
  load: ModelLoader,
  ref: string,
  text: string,
  settings: EvalSettings & { baseFile?: string | undefined },
  job: JobOptions,
): Promise<PerplexityResult> {
  return (await perplexityPass(load, ref, text, settings, job, false)).result;
}

async function perplexityPass(
  load: ModelLoader,
  ref: string,
  text: string,
  settings: EvalSettings & { baseFile?: string | undefined },
  job: JobOptions,
  collectNll: boolean,
): Promise<{ result: PerplexityResult; nllValues: Float64Array | undefined }> {
  const handle = await load(ref, settings.ctx);
  try {
    warnIfBeyondTraining(handle, settings.ctx, settings);
    const earlyPass = startEarlyPass(handle.scorer, text, settings.ctx, settings.chunks, settings.baseFile !== undefined);
    // Let the first pass's decode start before tokenising the whole text blocks this thread.
    if (earlyPass) await new Promise((resolve) => setTimeout(resolve, 50));
    let tokens: Uint32Array;
    let plan: ReturnType<typeof planChunks>;
    let baseWriter: KldBaseWriter | undefined;
    try {
      tokens = handle.scorer.tokenize(text);
      plan = planChunks(tokens.length, settings.ctx, settings.chunks);
      baseWriter = settings.baseFile
        ? await KldBaseWriter.create(settings.baseFile, { ctx: plan.ctx, vocabSize: handle.scorer.vocabSize, chunks: plan.chunks, tokens })
        : undefined;
    } catch (error) {
      // Never free the model under a decode still in flight.
      await earlyPass?.outcomes.catch(() => undefined);
      throw error;
    }
    settings.onStart?.(handle.model, plan.chunks);
    let run;
    try {
      run = await runPerplexity(handle.scorer, tokens, plan, { ...job, collectNll, earlyPass, ...(baseWriter ? { baseWriter } : {}) });
    } finally {
      await baseWriter?.close();
    }
    // A base file cut short by Ctrl-C would read as corrupt later; do not leave one behind.
    if (baseWriter && run.partial) await fs.rm(baseWriter.file, { force: true });
    const result = {
      ...resultFrom(handle, plan.ctx, plan.chunks, tokens.length, run),
      ...(settings.baseFile && !run.partial ? { klDivergenceBaseFile: path.resolve(settings.baseFile) } : {}),
    };
    return { result, nllValues: run.nllValues };
  } finally {
    await handle.dispose();
  }
}

/** --kl-divergence: compare a model with a base file; the file fixes the tokens, ctx and chunks. */
export async function evaluateKlDivergence(
  load: ModelLoader,
  ref: string,
  baseFile: string,
  settings: EvalSettings,
  job: JobOptions,
): Promise<PerplexityResult> {
  return (await klDivergencePass(load, ref, baseFile, settings, job)).result;
}

async function klDivergencePass(
  load: ModelLoader,
  ref: string,
  baseFile: string,
  settings: EvalSettings,
  job: JobOptions,
): Promise<{ result: PerplexityResult; nllValues: number[] }> {
  const reader = await KldBaseReader.open(baseFile);
  try {
    const { ctx, vocabSize, chunks } = reader.header;
    if (settings.chunks !== undefined && settings.chunks !== chunks) {
      throw new UsageError(`--chunks ${settings.chunks} does not match ${path.basename(baseFile)}, which holds ${chunks} chunks`, "Leave --chunks out with --kl-divergence");
    }
    if (chunks * (ctx - 1 - Math.floor(ctx / 2)) < MIN_KLD_TOKENS) {
      throw new UsageError(`${path.basename(baseFile)} scores fewer than ${MIN_KLD_TOKENS} tokens, too few for KL-divergence statistics`, "Write it with more chunks or a larger -c");
    }
    const handle = await load(ref, ctx);
    try {
      if (handle.scorer.vocabSize !== vocabSize) {
        throw new LmrunError(
          `vocabulary mismatch: ${handle.model.fileName} has ${handle.scorer.vocabSize} tokens, the base file ${path.basename(baseFile)} ${vocabSize}`,
          { hint: "Compare quantisations of the same model only" },
        );
      }
      warnIfBeyondTraining(handle, ctx, settings);
      settings.onStart?.(handle.model, chunks);
      const run = await runKlDivergence(handle.scorer, reader, job);
      const stats = kldStatistics(run.accumulator);
      const acc = run.accumulator;
      const result: PerplexityResult = {
        ...resultFrom(handle, ctx, chunks, reader.header.tokens.length, {
          ppl: stats.pplQ.value,
          pplError: pplErrorOf(acc.sumNll, acc.sumNll2, acc.count),
          tokensScored: acc.count,
          chunks: run.chunks,
          top1Accuracy: stats.top1Accuracy,
          seconds: run.seconds,
          partial: run.partial,
        }),
        klDivergence: stats,
      };
      return { result, nllValues: acc.nllValues };
    } finally {
      await handle.dispose();
    }
  } finally {
    await reader.close();
  }
}

/** The plain-perplexity ± (llama-perplexity's Final estimate), from the KLD pass's sums. */
function pplErrorOf(sum: number, sumSquares: number, count: number): number {
  const mean = sum / count;
  const variance = sumSquares / count - mean * mean;
  return variance > 0 ? Math.sqrt(variance / (count - 1)) * Math.exp(mean) : Number.NaN;
}

/** --base: one base pass into a temporary file, then one comparison per model. */
export async function compareWithBase(
  load: ModelLoader,
  baseRef: string,
  refs: string[],
  text: string,
  settings: EvalSettings,
  job: JobOptions,
): Promise<ComparisonResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lmrun-kld-"));
  const baseFile = path.join(dir, "base.kld");
  try {
    const { result: base, nllValues: baseNll } = await perplexityPass(load, baseRef, text, { ...settings, baseFile }, job, true);
    delete base.klDivergenceBaseFile;
    const models: PerplexityResult[] = [];
    if (!base.partial) {
      for (const ref of refs) {
        const { result, nllValues } = await klDivergencePass(load, ref, baseFile, { ...settings, chunks: undefined }, job);
        const paired = pairedPplRatio(baseNll!.subarray(0, nllValues.length), nllValues);
        models.push({ ...result, comparison: { basePpl: base.ppl, pplRatio: paired.ratio, lnPplRatio: paired.lnRatio } });
        if (result.partial) break;
      }
    }
    return { base, models };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
