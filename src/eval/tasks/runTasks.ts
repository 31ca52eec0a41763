import { LmrunError } from "../../errors.js";
import type { BranchScorer } from "../../engine/branchScoring.js";
import type { ChoiceTask } from "./datasets.js";
import { planTask, type TaskOutcome, type TaskPlan } from "./plan.js";

/**
 * Runs the selected tasks on a BranchScorer, `parallel` at a time (one context sequence each), and
 * reports outcomes in task order. On abort it stops taking tasks, drops the ones in flight (they stop
 * between two endings) and returns the ones done in order.
 */

export interface TaskProgress {
  /** 1-based position in evaluation order. */
  done: number;
  total: number;
  correct: number;
  outcome: TaskOutcome;
  task: ChoiceTask;
  elapsedMs: number;
  etaMs: number;
}

export interface TaskRun {
  outcomes: TaskOutcome[];
  /** Answers summed over the tasks done (multiple choice's random-chance figure). */
  answers: number;
  seconds: number;
  partial: boolean;
}

/**
 * llama-perplexity's limit: the tasks are packed into one batch of n_ctx = max(4, -np) x -c tokens,
 * and a task needing more stops the run ("does not fit in the context window"). lmrun checks every
 * task before scoring the first and names the first one too large.
 */
export function planAll(tasks: ChoiceTask[], tokenize: (text: string) => Uint32Array, limits: { batchTokens: number; sequenceTokens: number; ctx: number }): TaskPlan[] {
  return tasks.map((task, i) => {
    const plan = planTask(task, tokenize);
    if (plan.requiredTokens > limits.batchTokens || plan.sequenceTokens > limits.sequenceTokens) {
      throw new LmrunError(
        `task ${i + 1} (${task.index + 1} in the file) needs ${plan.requiredTokens} tokens, more than the ${limits.batchTokens} of -c ${limits.ctx} x 4 sequences (llama-perplexity stops there too)`,
        { hint: `Raise -c (e.g. -c ${Math.ceil(plan.requiredTokens / 4 / 128) * 128}) or remove the task` },
      );
    }
    return plan;
  });
}

export async function runTasks(scorer: BranchScorer, plans: TaskPlan[], options: { signal?: AbortSignal; onTask?: (p: TaskProgress) => void } = {}): Promise<TaskRun> {
  const startedAt = performance.now();
  const outcomes: Array<TaskOutcome | undefined> = new Array(plans.length);
  let next = 0;
  let flushed = 0;
  let correct = 0;
  let answers = 0;
  let failure: unknown;
  const flush = () => {
    while (flushed < plans.length && outcomes[flushed] !== undefined) {
      const outcome = outcomes[flushed]!;
      flushed += 1;
      if (outcome.correct) correct += 1;
      answers += outcome.scores.length;
      const elapsedMs = performance.now() - startedAt;
      options.onTask?.({ done: flushed, total: plans.length, correct, outcome, task: plans[flushed - 1]!.task, elapsedMs, etaMs: (elapsedMs / flushed) * (plans.length - flushed) });
    }
  };
  const aborted = (): boolean => options.signal?.aborted === true;
  const worker = async () => {
    while (next < plans.length && options.signal?.aborted !== true && failure === undefined) {
      const i = next++;
      const plan = plans[i]!;
      try {
        // The signal reaches the task in flight too (it stops between endings): on SIGTERM the partial
        // score must be printed within the grace, whatever the machine's speed.
        outcomes[i] = plan.finish(await scorer.score(plan.request, options.signal));
      } catch (error) {
        if (aborted()) return;
        failure ??= error;
        return;
      }
      flush();
    }
  };
  await Promise.all(Array.from({ length: Math.min(scorer.parallel, plans.length) }, worker));
  if (failure !== undefined) throw failure;
  const done = outcomes.slice(0, flushed) as TaskOutcome[];
  return { outcomes: done, answers, seconds: (performance.now() - startedAt) / 1000, partial: flushed < plans.length };
}
