import { badLinesError, idKey, parseBatch } from "../../client/batchFile.js";
import { fileSink, stdoutSink, type AnswerSink } from "../../client/batchOutput.js";
import type { BatchDefaults } from "../../client/batchRemote.js";
import { runBatch, type Answerer, type BatchProgress, type BatchSummary } from "../../client/batchRun.js";
import { readSettings } from "../../config/config.js";
import { LmrunError, UsageError, formatError } from "../../errors.js";
import { formatEta } from "../../io/pullProgress.js";
import { startSpinner } from "../../io/progress.js";
import { readInputText } from "../../io/inputFile.js";
import type { CommandContext } from "../context.js";
import { modelFacts, resolveLoadOptions, resolveSampling, type LoadFlags, type SamplingFlags } from "../modelOptions.js";

export interface BatchFlags extends LoadFlags, SamplingFlags {
  output?: string;
  resume?: boolean;
  parallel?: number;
  system?: string;
  raw?: boolean;
  stop?: string[];
  local?: boolean;
  server?: string;
  /** --no-think sets false. */
  think?: boolean;
}

/** In-process slots when --parallel is not given (the server's own count is used through a server). */
const DEFAULT_PARALLEL = 4;
/** How often a progress line goes to a stderr that is not a terminal (a log file). */
const LOG_PROGRESS_EVERY_MS = 10_000;

export async function batchCommand(ctx: CommandContext, modelRef: string, input: string, flags: BatchFlags): Promise<void> {
  if (flags.resume === true && flags.output === undefined) throw new UsageError("--resume needs -o FILE", "It continues the answers in that file");
  const source = input === "-" ? "stdin" : input;
  const text = await readInputText(input, { what: "batch file", stdin: ctx.stdin });
  const { items, bad } = parseBatch(text);
  if (bad.length > 0) throw badLinesError(source, bad);
  if (items.length === 0) throw new UsageError(`${source} holds no requests`, 'One JSON object a line, e.g. {"id": 1, "prompt": "..."}');

  const settings = await readSettings(ctx.env);
  // No seed drawn for the whole batch: each request gets its own (recorded with its answer) unless --seed.
  const defaults: BatchDefaults = { sampling: { ...resolveSampling(flags, settings), seed: flags.seed }, stop: flags.stop ?? [], system: flags.system, raw: flags.raw === true, ...(flags.think === false ? { think: false } : {}) };

  const sink: AnswerSink = flags.output !== undefined ? await fileSink(flags.output, flags.resume === true) : stdoutSink(ctx.stdout);
  try {
    const todo = items.filter((item) => !sink.answered.has(idKey(item.id)));
    const skipped = items.length - todo.length;
    if (todo.length === 0) {
      ctx.out.info(`batch: all ${items.length} requests are already answered in ${flags.output}`);
      return;
    }
    const engine = await openEngine(ctx, modelRef, flags, defaults, settings);
    let summary: BatchSummary;
    try {
      const reporter = await progressReporter(ctx, engine.where, skipped);
      try {
        summary = await runBatch(todo, engine.answer, {
          parallel: engine.parallel,
          signal: ctx.signal,
          onRecord: (record) => sink.write(record),
          onProgress: reporter.update,
          describeError: formatError,
        });
      } finally {
        reporter.stop();
      }
    } finally {
      await engine.close();
    }
    if (!ctx.quiet && !summary.interrupted) ctx.out.diag(summaryLine(summary, skipped, engine.where));
    if (summary.failed > 0 && !summary.interrupted) {
      throw new LmrunError(`${summary.failed} of ${summary.total} requests failed`, {
        hint: `Their lines in the output carry "error"${flags.output !== undefined ? "; --resume runs them again" : ""}`,
      });
    }
  } finally {
    await sink.close();
  }
}

interface BatchEngine {
  answer: Answerer;
  parallel: number;
  /** "in-process" or the server's URL, for the progress line. */
  where: string;
  close(): Promise<void>;
}

/** A running server when there is one (client/route.ts decides, as for run), else the model loaded here. */
async function openEngine(ctx: CommandContext, modelRef: string, flags: BatchFlags, defaults: BatchDefaults, settings: Awaited<ReturnType<typeof readSettings>>): Promise<BatchEngine> {
  const { routeModel, mayFallBack } = await import("../../client/route.js");
  const route = await routeModel(flags, modelRef, ctx.env, { signal: ctx.signal, ...(ctx.verbose ? { diag: (m: string) => ctx.out.diag(m) } : {}) });
  if (route !== undefined) {
    const { prepareServerModel, remoteAnswerer } = await import("../../client/batchRemote.js");
    try {
      const slots = await prepareServerModel(route.client, route.model, ctx.signal);
      return {
        answer: remoteAnswerer(route.client, route.model, defaults),
        // As many requests at once as the server has slots: more would only wait in its queue.
        parallel: flags.parallel ?? slots ?? DEFAULT_PARALLEL,
        where: route.client.url,
        close: async () => route.client.close(),
      };
    } catch (error) {
      route.client.close();
      if (!mayFallBack(route, error)) throw error;
      if (ctx.verbose) ctx.out.diag(`${(error as Error).message}: running in-process`);
    }
  }
  const parallel = flags.parallel ?? DEFAULT_PARALLEL;
  const { resolveAndLoad } = await import("../prepareModel.js");
  const prepared = await resolveAndLoad(ctx, modelRef, (resolved) => ({
    ...resolveLoadOptions(flags, ctx.env, settings, ctx.verbose, modelFacts(resolved.path)),
    sequences: parallel,
    generationOnly: true,
  }));
  try {
    const { localAnswerer } = await import("./batchLocal.js");
    const local = await localAnswerer(prepared.loaded, parallel, defaults);
    return {
      answer: local.answer,
      parallel,
      where: "in-process",
      close: async () => {
        await local.close();
        await prepared.loaded.dispose();
      },
    };
  } catch (error) {
    await prepared.loaded.dispose();
    throw error;
  }
}

/** A live line on a terminal; on a log (stderr not a terminal) a line every 10 s; nothing with --quiet. */
async function progressReporter(ctx: CommandContext, where: string, skipped: number): Promise<{ update: (p: BatchProgress) => void; stop: () => void }> {
  if (ctx.quiet) return { update: () => {}, stop: () => {} };
  if (ctx.out.stderrIsTTY) {
    const spinner = await startSpinner(`batch (${where}): starting`, { stderr: ctx.stderr, env: ctx.env });
    return { update: (p) => spinner.update(progressLine(p, where, skipped)), stop: () => spinner.stop() };
  }
  let lastAt = performance.now();
  return {
    update: (p) => {
      const now = performance.now();
      if (now - lastAt < LOG_PROGRESS_EVERY_MS) return;
      lastAt = now;
      ctx.out.diag(progressLine(p, where, skipped));
    },
    stop: () => {},
  };
}

export function progressLine(p: BatchProgress, where: string, skipped: number): string {
  const seconds = p.elapsedMs / 1000;
  const rate = seconds > 0 ? p.generatedTokens / seconds : 0;
  return (
    `batch (${where}): ${p.done + p.failed}/${p.total} done${p.failed > 0 ? ` (${p.failed} failed)` : ""}` +
    `${skipped > 0 ? `, ${skipped} answered before` : ""}, ${p.running} running, ${rate.toFixed(1)} tokens/s, ETA ${formatEta(p.etaSeconds)}`
  );
}

function summaryLine(s: BatchSummary, skipped: number, where: string): string {
  const seconds = s.elapsedMs / 1000;
  return (
    `batch (${where}): ${s.done} answered${s.failed > 0 ? `, ${s.failed} failed` : ""}${skipped > 0 ? `, ${skipped} skipped (answered before)` : ""}` +
    ` in ${seconds.toFixed(1)} s: ${(s.done / Math.max(seconds, 1e-9)).toFixed(2)} requests/s, ${(s.generatedTokens / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s generated`
  );
}
