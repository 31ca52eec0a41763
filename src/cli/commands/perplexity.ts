import path from "node:path";
import type { Command } from "commander";
import { readSettings } from "../../config/config.js";
import type { ModelLoader } from "../../eval/run.js";
import type { ChunkEvent, PerplexityResult } from "../../eval/types.js";
import { progressAllowed } from "../../io/tty.js";
import type { CommandContext } from "../context.js";
import { CancelledError, isTerminated, UsageError } from "../../errors.js";
import { acceptLlamaCppSpellings, LOAD_SPELLINGS } from "../llamaCppFlags.js";
import { addLoadOptions, resolveLoadOptions, warnIfThreadsAboveCores, type LoadFlags } from "../modelOptions.js";
import { parseInteger } from "../parse.js";
import { resolveAndLoad } from "../prepareModel.js";

interface PerplexityFlags extends LoadFlags {
  file?: string;
  chunks?: number;
  klDivergenceBase?: string;
  klDivergence?: boolean;
  base?: string;
  json?: boolean;
  plot?: string;
}

/** llama-perplexity's defaults: -c 512, -b 2048. */
export const DEFAULT_PERPLEXITY_CTX = 512;
export const DEFAULT_PERPLEXITY_BATCH = 2048;

export function registerPerplexity(program: Command, ctx: CommandContext): void {
  const command = program
    .command("perplexity")
    .description(
      "perplexity of a text, computed as llama.cpp's llama-perplexity (-c is the chunk size, default 512); with --base, how much a quantisation loses",
    )
    .argument("<models...>", "a .gguf path or catalogue name (several with --base)")
    .option("-f, --file <file>", "the text to score (default: piped stdin), e.g. wiki.test.raw")
    .option("--chunks <n>", "score only the first n chunks", parseInteger(1))
    .option("--kl-divergence-base <file>", "write the base model's distributions to this file (or, with --kl-divergence, read them)")
    .option("--kl-divergence", "compare the model with --kl-divergence-base FILE: KLD, Δp, same top p, PPL ratio")
    .option("--base <model>", "compare each model with this base model in one run (no file to manage)")
    .option("--json", "print one JSON object")
    .option("--plot <file>", "also draw PPL over the chunks (with --base or --kl-divergence: the KLD distribution too) into FILE.svg or .png");
  addLoadOptions(command);
  // The shared load flags mean llama-perplexity's things here.
  describeOption(command, "--ctx", `tokens per chunk (default ${DEFAULT_PERPLEXITY_CTX}, as llama-perplexity)`);
  describeOption(command, "--threads", "CPU threads for evaluation (default: all cores, as llama-perplexity)");
  describeOption(command, "--batch-size", `tokens per batch (default ${DEFAULT_PERPLEXITY_BATCH}); b/c chunks are scored side by side`);
  acceptLlamaCppSpellings(command, LOAD_SPELLINGS);
  command.action(async (models: string[], flags: PerplexityFlags) => {
    await perplexityCommand(ctx, models, flags);
  });
}

function describeOption(command: Command, long: string, description: string): void {
  const option = command.options.find((o) => o.long === long);
  if (option) option.description = description;
}

async function perplexityCommand(ctx: CommandContext, models: string[], flags: PerplexityFlags): Promise<void> {
  const mode = flags.base !== undefined ? "compare" : flags.klDivergence ? "kld" : "ppl";
  if (models.length > 1 && mode !== "compare") throw new UsageError("several models need --base MODEL to compare them with", "Or run one model at a time");
  if (mode === "compare" && (flags.klDivergence || flags.klDivergenceBase !== undefined)) {
    throw new UsageError("--base does both passes itself: leave out --kl-divergence and --kl-divergence-base");
  }
  if (mode === "kld" && flags.klDivergenceBase === undefined) throw new UsageError("--kl-divergence needs --kl-divergence-base FILE", "Write that file first with the base model");

  if (flags.plot !== undefined) (await import("../../plot/render.js")).chartFormat(flags.plot);
  const settings = await readSettings(ctx.env);
  warnIfThreadsAboveCores(ctx, flags);
  const format = await import("../../eval/format.js");
  const { createPerplexityProgress } = await import("../../eval/progress.js");
  // --verbose shows the progress in a pipe too (a log, or a script waiting for chunks).
  const progress = createPerplexityProgress(progressAllowed(ctx.stderr, ctx.env, ctx.quiet) || ctx.verbose ? (text) => ctx.out.stderr.write(text) : undefined);
  const load: ModelLoader = async (ref, ctxSize) => {
    if (flags.ctx !== undefined && flags.ctx !== ctxSize) {
      throw new UsageError(`-c ${flags.ctx} does not match the base file's context of ${ctxSize}`, "Leave -c out with --kl-divergence");
    }
    // llama-perplexity's layout: -b (default 2048) at or above -c scores b/c chunks side by side.
    const sequences = Math.max(1, Math.floor((flags.batchSize ?? DEFAULT_PERPLEXITY_BATCH) / ctxSize));
    const prepared = await resolveAndLoad(ctx, ref, (resolved) => {
      const options = resolveLoadOptions({ ...flags, ctx: ctxSize }, ctx.env, settings, ctx.verbose, { fileName: path.basename(resolved.path) });
      return {
        ...options,
        contextSize: ctxSize,
        sequences,
        batchSize: Math.min(flags.batchSize ?? DEFAULT_PERPLEXITY_BATCH, ctxSize * sequences),
        // Perplexity is all batch work: -t sets its threads, as llama-perplexity's -t does.
        batchThreads: flags.threadsBatch ?? flags.threads ?? options.batchThreads,
      };
    });
    const { createChunkScorer } = await import("../../engine/scoring.js");
    try {
      const { loaded, resolved } = prepared;
      return {
        scorer: createChunkScorer(loaded),
        model: { path: loaded.summary.path, fileName: loaded.summary.fileName, name: resolved.displayName },
        loadSeconds: prepared.loadMs / 1000,
        threads: loaded.summary.batchThreads,
        batchSize: loaded.context.batchSize,
        trainContextSize: loaded.summary.trainContextSize,
        // Terminated, a chunk may still be decoding: the process dies without freeing the model under it.
        dispose: () => (isTerminated(ctx.signal) ? Promise.resolve() : loaded.dispose()),
      };
    } catch (error) {
      await prepared.loaded.dispose();
      throw error;
    }
  };
  const evalSettings = {
    ctx: flags.ctx ?? DEFAULT_PERPLEXITY_CTX,
    chunks: flags.chunks,
    onWarning: (m: string) => ctx.out.warn(m),
    onStart: progress.start.bind(progress),
  };
  const chunkEvents: { chunk: number; ppl: number }[] = [];
  const job = {
    signal: ctx.signal,
    onChunk: (event: ChunkEvent) => {
      chunkEvents.push({ chunk: event.chunk, ppl: event.ppl });
      progress.chunk(event);
    },
  };
  const run = await import("../../eval/run.js");
  const { readCorpus } = await import("../../eval/corpus.js");

  if (mode === "compare") {
    await checkVocabularies(ctx, flags.base!, models);
    const text = await readCorpus(flags.file, ctx.stdin);
    const result = await run.compareWithBase(load, flags.base!, models, text, evalSettings, job);
    progress.end();
    if (result.base.chunks === 0) throw new CancelledError();
    if (flags.json) ctx.out.json({ ...result, partial: result.base.partial || result.models.some((m) => m.partial) });
    else ctx.out.text(partialNote(result.base.partial || result.models.some((m) => m.partial)) + format.formatComparisonTable(result));
    if (flags.plot !== undefined) await plotPerplexity(ctx, flags.plot, chunkEvents, [result.base, ...result.models], result.base.ctx);
    return;
  }
  const result =
    mode === "kld"
      ? await run.evaluateKlDivergence(load, models[0]!, flags.klDivergenceBase!, evalSettings, job)
      : await run.evaluatePerplexity(load, models[0]!, await readCorpus(flags.file, ctx.stdin), { ...evalSettings, baseFile: flags.klDivergenceBase }, job);
  progress.end();
  if (result.chunks === 0) throw new CancelledError();
  if (flags.json) return ctx.out.json(result);
  // With --kl-divergence, llama-perplexity prints its statistics blocks instead of the final estimate.
  const body = result.klDivergence ? format.formatKldStatistics(result.klDivergence) : format.formatFinalEstimate(result.ppl, result.pplError) + "\n";
  ctx.out.text(partialNote(result.partial) + body);
  if (ctx.verbose) ctx.out.diag(format.formatSummaryLine(result));
  if (flags.plot !== undefined) await plotPerplexity(ctx, flags.plot, chunkEvents, [result], result.ctx);
}

/** --plot: the running PPL of each pass (base first), and the KLD distribution of each model compared. */
async function plotPerplexity(ctx: CommandContext, file: string, events: { chunk: number; ppl: number }[], results: PerplexityResult[], chunkSize: number): Promise<void> {
  const { perplexitySpec, splitPasses } = await import("../../plot/perplexityCharts.js");
  const { writeChart } = await import("../../plot/render.js");
  const names = results.map((r) => r.model.name);
  const kld = results.flatMap((r) => (r.klDivergence ? [{ model: r.model.name, kld: r.klDivergence.kld }] : []));
  await writeChart(file, perplexitySpec(splitPasses(events, names), chunkSize, kld));
  ctx.out.info(`chart written to ${file}`);
}

function partialNote(partial: boolean): string {
  return partial ? "partial (interrupted): the figures below cover only the chunks done\n" : "";
}

/** Resolves every model and compares their tokenizers before the base pass starts. */
async function checkVocabularies(ctx: CommandContext, baseRef: string, refs: string[]): Promise<void> {
  const { resolveModel } = await import("../../models/resolve.js");
  const { checkModelFileHeader } = await import("../../engine/modelFile.js");
  const { readVocabularyTokens } = await import("../../engine/scoring.js");
  const { checkSameVocabulary } = await import("../../eval/vocabulary.js");
  const pathOf = async (ref: string) => {
    const resolved = await resolveModel(ref, { env: ctx.env, signal: ctx.signal });
    await checkModelFileHeader(resolved.path);
    return resolved.path;
  };
  const basePath = await pathOf(baseRef);
  const paths: string[] = [];
  for (const ref of refs) paths.push(await pathOf(ref));
  await checkSameVocabulary(basePath, paths, readVocabularyTokens);
}
