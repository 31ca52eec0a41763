import path from "node:path";
import { readSettings } from "../../config/config.js";
import { CancelledError, UsageError } from "../../errors.js";
import type { GenTask } from "../../eval/gen/tasks.js";
import type { MetricName, MetricReport } from "../../eval/gen/score.js";
import type { GeneratedAnswer } from "../../eval/gen/generator.js";
import { writeFileAtomic } from "../../fs/atomicWrite.js";
import { formatDuration } from "../../io/format.js";
import { decodeUtf8, readInputBytes } from "../../io/inputFile.js";
import { statusLine } from "../../io/statusLine.js";
import type { CommandContext } from "../context.js";
import { modelFacts, resolveLoadOptions, resolveSampling, type LoadFlags, type SamplingFlags } from "../modelOptions.js";
import { resolveAndLoad } from "../prepareModel.js";

/** `lmrun eval gen`: generate answers (or take them from a file) and score them. */

export interface EvalGenFlags extends LoadFlags, SamplingFlags {
  file?: string;
  scoreOnly?: string;
  metrics?: string;
  rougeStemmer?: boolean;
  parallel?: number;
  raw?: boolean;
  stop?: string[];
  answers?: string;
  base?: string;
  json?: boolean;
}

/** Answers are short: 128 tokens unless -n says otherwise; greedy unless --temp says otherwise. */
export const DEFAULT_GEN_MAX_TOKENS = 128;
export const DEFAULT_GEN_PARALLEL = 4;

async function readInput(file: string, what: string, flag: string): Promise<string> {
  const bytes = await readInputBytes(file, { what, flag, emptyHint: `Give a ${what} with one JSON object per line` });
  return decodeUtf8(bytes, file, "JSONL files are UTF-8 text");
}

interface GenRun {
  model: { path: string; fileName: string; name: string };
  answers: GeneratedAnswer[];
  partial: boolean;
  seconds: number;
  loadSeconds: number;
  sequences: number;
  chatTemplate: boolean;
}

export async function evalGenCommand(ctx: CommandContext, modelRef: string | undefined, flags: EvalGenFlags): Promise<void> {
  const score = await import("../../eval/gen/score.js");
  const { parseAnswers, parseGenTasks } = await import("../../eval/gen/tasks.js");
  const metrics = score.parseMetrics(flags.metrics);
  const stem = flags.rougeStemmer === true;

  if (flags.scoreOnly !== undefined) {
    if (modelRef !== undefined || flags.base !== undefined) throw new UsageError("--score-only scores answers made elsewhere: give no model and no --base");
    const tasks = flags.file !== undefined ? new Map(parseGenTasks(await readInput(flags.file, "tasks file", "-f"), path.basename(flags.file)).map((t) => [t.id, t])) : undefined;
    const answers = parseAnswers(await readInput(flags.scoreOnly, "answers file", "--score-only"), path.basename(flags.scoreOnly), tasks);
    const { report } = score.scoreItems(answers, metrics, stem);
    if (flags.json) return ctx.out.json({ answersFile: path.resolve(flags.scoreOnly), ...report, metricsRequested: metrics });
    ctx.out.text(score.formatMetricTable(report, metrics));
    return;
  }

  if (modelRef === undefined) throw new UsageError("no model to generate with", "Give a model, or --score-only ANSWERS.jsonl to score answers made elsewhere");
  if (flags.file === undefined) throw new UsageError("no tasks file", "Give one with -f tasks.jsonl (lines {\"id\", \"prompt\", \"reference\"})");
  const tasks = parseGenTasks(await readInput(flags.file, "tasks file", "-f"), path.basename(flags.file));
  const settings = await readSettings(ctx.env);
  const sampling = resolveSampling({ ...flags, temp: flags.temp ?? 0, maxTokens: flags.maxTokens ?? DEFAULT_GEN_MAX_TOKENS }, settings);
  const sequences = flags.parallel ?? DEFAULT_GEN_PARALLEL;
  const status = statusLine(ctx);
  const { runGeneration } = await import("../../eval/gen/generator.js");
  const { inProcessGenerator } = await import("../../eval/gen/inProcessGenerator.js");

  const generateWith = async (ref: string, subset: GenTask[]): Promise<GenRun> => {
    const prepared = await resolveAndLoad(ctx, ref, (resolved) => {
      const options = resolveLoadOptions(flags, ctx.env, settings, ctx.verbose, modelFacts(resolved.path));
      // One thread count for prompts and tokens alike: the sequences in flight mix both in every
      // batch, and generate() switching the context between -tb and -t for each request made
      // concurrent requests flip it at every step (20x slower with -t 1 on 2 cores).
      const threads = flags.threads ?? flags.threadsBatch ?? options.threads;
      return { ...options, threads, batchThreads: threads, sequences, generationOnly: true };
    });
    const { loaded, resolved } = prepared;
    try {
      const chat = flags.raw !== true && loaded.summary.hasChatTemplate;
      const conversation = chat ? undefined : subset.find((t) => t.messages !== undefined);
      if (conversation !== undefined) {
        throw new UsageError(
          `${path.basename(flags.file!)} line ${conversation.line}: a conversation of several turns needs a chat template, and ${flags.raw === true ? "--raw turns it off" : `${loaded.summary.fileName} has none`}`,
          flags.raw === true ? "Drop --raw" : "Use a model with a chat template, or give that task as one prompt",
        );
      }
      // The scheduler seam: any AnswerGenerator can stand here (see src/eval/gen/generator.ts).
      const generator = inProcessGenerator(loaded, { chat, maxTokens: sampling.maxTokens, stop: flags.stop ?? [], sampling, truncate: false });
      const run = await runGeneration(generator, subset, {
        signal: ctx.signal,
        onProgress: (p) => status.show(`${loaded.summary.fileName}: ${p.done}/${p.total} answers, ETA ${formatDuration(p.etaMs)}`),
      });
      status.clear();
      return {
        model: { path: loaded.summary.path, fileName: loaded.summary.fileName, name: resolved.displayName },
        answers: run.answers,
        partial: run.partial,
        seconds: run.seconds,
        loadSeconds: prepared.loadMs / 1000,
        sequences: loaded.context.totalSequences,
        chatTemplate: chat,
      };
    } finally {
      status.clear();
      await loaded.dispose();
    }
  };

  const main = await generateWith(modelRef, tasks);
  if (main.answers.length === 0) throw new CancelledError();
  const base = flags.base !== undefined && !main.partial ? await generateWith(flags.base, tasks) : undefined;
  const n = Math.min(main.answers.length, base?.answers.length ?? Infinity);
  if (n === 0) throw new CancelledError();
  const items = (run: GenRun) => run.answers.slice(0, n).map((a, i) => ({ answer: a.text.trim(), references: tasks[i]!.references }));
  const mainScore = score.scoreItems(items(main), metrics, stem);
  const baseScore = base ? score.scoreItems(items(base), metrics, stem) : undefined;
  const difference = baseScore ? score.differenceOf(mainScore.stats, baseScore.stats, metrics) : undefined;
  const partial = main.partial || (base?.partial ?? false);

  if (flags.answers !== undefined) {
    const lines = main.answers.map((a, i) => JSON.stringify({ id: tasks[i]!.id, answer: a.text.trim(), references: tasks[i]!.references }));
    await writeFileAtomic(flags.answers, lines.join("\n") + "\n");
  }
  const runJson = (run: GenRun, report: MetricReport) => ({
    model: run.model,
    ...report,
    generatedTokens: run.answers.reduce((s, a) => s + a.generatedTokens, 0),
    promptTokens: run.answers.reduce((s, a) => s + a.promptTokens, 0),
    seconds: run.seconds,
    loadSeconds: run.loadSeconds,
    partial: run.partial,
  });
  if (flags.json) {
    ctx.out.json({
      tasksFile: path.resolve(flags.file),
      tasks: tasks.length,
      ...runJson(main, mainScore.report),
      settings: { sampling, parallel: main.sequences, chatTemplate: main.chatTemplate, stop: flags.stop ?? [] },
      metricsRequested: metrics,
      ...(base && baseScore ? { base: runJson(base, baseScore.report), difference } : {}),
      partial,
    });
    return;
  }
  const note = partial ? `partial (interrupted): the scores cover the first ${n} of ${tasks.length} tasks\n` : "";
  ctx.out.text(note + score.formatMetricTable(mainScore.report, metrics as MetricName[], baseScore?.report, difference));
}
