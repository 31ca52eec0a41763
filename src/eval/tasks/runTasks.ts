import { LmrunError } from "../../errors.js";
import type { BranchScorer } from "../../engine/branchScoring.js";
import type { ChoiceTask } from "./datasets.js";
import { planTask, type TaskOutcome, type TaskPlan } from "./plan.js";

/**
 * Runs the selected tasks on a BranchScorer in rounds of `parallel` tasks, and reports outcomes in
 * task order. On abort it stops, drops the round in flight (it stops between two endings) and
 * returns the tasks done.
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
    const which = `task ${i + 1} (${task.index + 1} in the file)`;
    if (plan.requiredTokens > limits.batchTokens) {
      throw new LmrunError(`${which} needs ${plan.requiredTokens} tokens, more than the ${limits.batchTokens} of -c ${limits.ctx} x 4 sequences (llama-perplexity stops there too)`, {
        hint: `Raise -c (e.g. -c ${roundedCtx(plan.requiredTokens / 4)}) or remove the task`,
      });
    }
    // Each choice is scored on its own sequence of -c tokens, after the shared context.
    if (plan.sequenceTokens > limits.sequenceTokens) {
      throw new LmrunError(`${which}: a choice with its context needs ${plan.sequenceTokens} tokens, more than one sequence's ${limits.sequenceTokens} (-c)`, {
        hint: `Raise -c (e.g. -c ${roundedCtx(plan.sequenceTokens)}) or remove the task`,
      });
    }
    return plan;
  });
}

function roundedCtx(tokens: number): number {
  return Math.ceil(tokens / 128) * 128;
}

export async function runTasks(scorer: BranchScorer, plans: TaskPlan[], options: { signal?: AbortSignal; onTask?: (p: TaskProgress) => void } = {}): Promise<TaskRun> {
  const startedAt = performance.now();
  const outcomes: TaskOutcome[] = [];
  let correct = 0;
  let answers = 0;
  const round = Math.max(1, scorer.parallel);
  const aborted = (): boolean => options.signal?.aborted === true;
  for (let first = 0; first < plans.length && !aborted(); first += round) {
    const batch = plans.slice(first, first + round);
    let results;
    try {
      // The signal reaches the round in flight too (it stops between endings): on SIGTERM the partial
      // score must be printed within the grace, whatever the machine's speed.
      results = await scorer.scoreRound(
        batch.map((plan) => plan.request),
        options.signal,
      );
    } catch (error) {
      if (aborted()) break;
      throw error;
    }
    for (const [k, plan] of batch.entries()) {
      const outcome = plan.finish(results[k]!);
      outcomes.push(outcome);
      if (outcome.correct) correct += 1;
      answers += outcome.scores.length;
      const done = outcomes.length;
      const elapsedMs = performance.now() - startedAt;
      options.onTask?.({ done, total: plans.length, correct, outcome, task: plan.task, elapsedMs, etaMs: (elapsedMs / done) * (plans.length - done) });
    }
  }
  return { outcomes, answers, seconds: (performance.now() - startedAt) / 1000, partial: outcomes.length < plans.length };
}
