import path from "node:path";
import { readSettings } from "../../config/config.js";
import { CancelledError, UsageError } from "../../errors.js";
import type { BranchScorer } from "../../engine/branchScoring.js";
import { formatDuration } from "../../io/format.js";
import { decodeUtf8, readInputBytes } from "../../io/inputFile.js";
import { statusLine } from "../../io/statusLine.js";
import type { ChoiceTask, Selection, TaskKind } from "../../eval/tasks/datasets.js";
import type { Score } from "../../eval/tasks/report.js";
import type { EvaluatedModel } from "../../eval/types.js";
import type { CommandContext } from "../context.js";
import { resolveLoadOptions, type LoadFlags } from "../modelOptions.js";
import { resolveAndLoad } from "../prepareModel.js";

/** `lmrun eval hellaswag|winogrande|mc`: llama-perplexity's task scores, its table and its figures. */

export interface EvalTaskFlags extends LoadFlags {
  file?: string;
  tasks?: number;
  parallel?: number;
  base?: string;
  json?: boolean;
}

/** llama-perplexity's defaults: -c 512 per sequence, at least 4 sequences, HellaSwag 400 tasks. */
export const DEFAULT_TASK_CTX = 512;
export const DEFAULT_HELLASWAG_TASKS = 400;
/** llama-perplexity packs tasks into max(4, -np) x -c tokens. */
const LLAMA_SEQUENCES = 4;
/** Tasks scored at once: 1 is as fast on CPU (measured, README) and keeps llama-perplexity's cell layout. */
export const DEFAULT_TASK_PARALLEL = 1;

/** Sequences a task's choices take at once. */
function branchCount(task: ChoiceTask): number {
  return task.kind === "hellaswag" ? task.endings.length : task.kind === "winogrande" ? task.choices.length : task.answers.length;
}

export const TASK_TITLES: Record<TaskKind, string> = { hellaswag: "HellaSwag", winogrande: "Winogrande", mc: "multiple choice" };

interface ModelRun {
  model: EvaluatedModel;
  score: Score;
  correct: boolean[];
  tasksDone: number;
  partial: boolean;
  seconds: number;
  loadSeconds: number;
  threads: number;
  sequences: number;
  /** How choices were scored (BranchScorer.method). */
  method: string;
}

async function readTaskFile(file: string | undefined): Promise<Uint8Array> {
  if (file === undefined) throw new UsageError("no task file", "Give one with -f FILE");
  return readInputBytes(file, { what: "task file", flag: "-f", emptyHint: "Give a task file in llama-perplexity's format" });
}

function decodeText(bytes: Uint8Array, source: string): string {
  return decodeUtf8(bytes, source, "HellaSwag and Winogrande files are text; multiple choice (mc) files are llama.cpp's binary format");
}

async function selectTasks(kind: TaskKind, file: string, bytes: Uint8Array, count: number | undefined): Promise<Selection<ChoiceTask>> {
  const datasets = await import("../../eval/tasks/datasets.js");
  const source = path.basename(file);
  if (kind === "hellaswag") return datasets.parseHellaswag(decodeText(bytes, source), source, count ?? DEFAULT_HELLASWAG_TASKS);
  if (kind === "winogrande") return datasets.parseWinogrande(decodeText(bytes, source), source, count);
  return datasets.parseMultipleChoice(bytes, source, count);
}

export async function evalTasksCommand(ctx: CommandContext, kind: TaskKind, modelRef: string, flags: EvalTaskFlags): Promise<void> {
  const taskCtx = flags.ctx ?? DEFAULT_TASK_CTX;
  const bytes = await readTaskFile(flags.file);
  const selection = await selectTasks(kind, flags.file!, bytes, flags.tasks);
  for (const line of selection.skipped.slice(0, 5)) ctx.out.warn(`skipped ${line} (as llama-perplexity does)`);
  if (selection.skipped.length > 5) ctx.out.warn(`skipped ${selection.skipped.length - 5} more lines`);

  const settings = await readSettings(ctx.env);
  const tasksAtOnce = flags.parallel ?? DEFAULT_TASK_PARALLEL;
  const branchesPerTask = Math.max(1, ...selection.tasks.map(branchCount));
  // One sequence per choice of each task in flight, -c tokens each (a choice with its context must
  // fit in -c, as one of llama-perplexity's -np sequences must).
  const sequences = tasksAtOnce * branchesPerTask;
  const batchTokens = Math.max(LLAMA_SEQUENCES, tasksAtOnce) * taskCtx;
  const status = statusLine(ctx);
  const report = await import("../../eval/tasks/report.js");
  const { planAll, runTasks } = await import("../../eval/tasks/runTasks.js");

  const evaluate = async (ref: string, streamTable: boolean): Promise<ModelRun> => {
    const prepared = await resolveAndLoad(ctx, ref, (resolved) => {
      const options = resolveLoadOptions({ ...flags, ctx: taskCtx }, ctx.env, settings, ctx.verbose, { fileName: path.basename(resolved.path) });
      return {
        ...options,
        contextSize: taskCtx,
        sequences,
        // llama-perplexity's cache is one for all sequences: a task's choices share its context's cells.
        unifiedKvCache: true,
        batchSize: Math.min(flags.batchSize ?? 2048, taskCtx * sequences),
        // All batch work: -t sets its threads, as llama-perplexity's -t does.
        batchThreads: flags.threadsBatch ?? flags.threads ?? options.batchThreads,
      };
    });
    const { loaded, resolved } = prepared;
    try {
      const { createBranchScorer } = await import("../../engine/branchScoring.js");
      const scorer: BranchScorer = createBranchScorer(loaded, { branchesPerTask, tasksAtOnce });
      if (ctx.verbose) ctx.out.diag(`scoring ${scorer.parallel} task${scorer.parallel === 1 ? "" : "s"} at once: ${scorer.method}`);
      const plans = planAll(selection.tasks, scorer.tokenize, { batchTokens, sequenceTokens: scorer.sequenceSize, ctx: taskCtx });
      const model: EvaluatedModel = { path: loaded.summary.path, fileName: loaded.summary.fileName, name: resolved.displayName };
      const write = (text: string) => {
        status.clear();
        ctx.out.text(text);
      };
      if (streamTable) write(report.tableHeader(kind));
      const run = await runTasks(scorer, plans, {
        signal: ctx.signal,
        onTask: (p) => {
          if (streamTable) {
            const answer = p.task.kind === "winogrande" ? { answer: p.task.answer } : {};
            write(report.tableRow(kind, { task: p.done, correct: p.correct, predicted: p.outcome.predicted, scores: p.outcome.scores, ...answer }));
          }
          status.show(
            `${model.fileName}: ${p.done}/${p.total} tasks, ${report.cFixed((100 * p.correct) / p.done, 2)}% correct, ETA ${formatDuration(p.etaMs)}`,
          );
        },
      });
      status.clear();
      const correct = run.outcomes.map((o) => o.correct);
      const n = correct.length;
      return {
        model,
        score: report.scoreOf(kind, correct.filter(Boolean).length, n, run.answers),
        correct,
        tasksDone: n,
        partial: run.partial,
        seconds: run.seconds,
        loadSeconds: prepared.loadMs / 1000,
        threads: loaded.summary.batchThreads,
        sequences: loaded.context.totalSequences,
        method: scorer.method,
      };
    } finally {
      status.clear();
      await loaded.dispose();
    }
  };

  const streamTable = !flags.json && flags.base === undefined;
  const main = await evaluate(modelRef, streamTable);
  if (main.tasksDone === 0) throw new CancelledError();
  let base: ModelRun | undefined;
  if (flags.base !== undefined && !main.partial) base = await evaluate(flags.base, false);
  const partial = main.partial || (base?.partial ?? false);

  const settingsJson = { ctx: taskCtx, batchTokens, sequences: main.sequences, threads: main.threads, scoring: main.method };
  const runJson = (r: ModelRun) => ({ model: r.model, ...r.score, partial: r.partial, seconds: r.seconds, loadSeconds: r.loadSeconds });
  const difference = base && base.tasksDone > 0 ? report.pairedDifference(main.correct.slice(0, base.tasksDone), base.correct) : undefined;
  if (flags.json) {
    ctx.out.json({
      task: kind,
      file: path.resolve(flags.file!),
      selection: selection.selection,
      tasksAvailable: selection.available,
      tasksSelected: selection.tasks.length,
      linesSkipped: selection.skipped.length,
      ...runJson(main),
      settings: settingsJson,
      ...(base ? { base: runJson(base), difference } : {}),
      partial,
    });
    return;
  }
  const note = partial ? `partial (interrupted): the figures cover the first ${base?.tasksDone ?? main.tasksDone} of ${selection.tasks.length} tasks\n` : "";
  if (!base) {
    ctx.out.text(report.finalLines(kind, main.score) + note);
    return;
  }
  ctx.out.text(note + report.formatComparison(kind, main, base, difference!));
}
