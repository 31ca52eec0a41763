import type { GenTask } from "./tasks.js";

/**
 * How `lmrun eval gen` gets its answers. The in-process implementation (inProcessGenerator.ts) runs
 * one-shot generation on the model's context sequences; a server-side slot scheduler can implement
 * the same interface and be passed to runGeneration() instead.
 */
export interface GeneratedAnswer {
  text: string;
  promptTokens: number;
  generatedTokens: number;
}

export interface AnswerGenerator {
  /** Tasks answered at once (runGeneration keeps this many requests in flight). */
  readonly parallel: number;
  generate(task: GenTask, signal: AbortSignal): Promise<GeneratedAnswer>;
}

export interface GenerationProgress {
  done: number;
  total: number;
  elapsedMs: number;
  etaMs: number;
}

/**
 * Answers every task, `parallel` at a time, and returns them in task order. On abort it stops
 * starting tasks, lets the ones in flight end (they stop generating at once) and returns the
 * answered prefix with partial: true.
 */
export async function runGeneration(
  generator: AnswerGenerator,
  tasks: GenTask[],
  options: { signal: AbortSignal; onProgress?: (p: GenerationProgress) => void },
): Promise<{ answers: GeneratedAnswer[]; partial: boolean; seconds: number }> {
  const startedAt = performance.now();
  const answers: Array<GeneratedAnswer | undefined> = new Array(tasks.length);
  let next = 0;
  let done = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < tasks.length && !options.signal.aborted && failure === undefined) {
      const i = next++;
      try {
        const answer = await generator.generate(tasks[i]!, options.signal);
        // An answer cut by Ctrl-C is not a finished answer.
        if (options.signal.aborted) return;
        answers[i] = answer;
      } catch (error) {
        failure ??= error;
        return;
      }
      done += 1;
      const elapsedMs = performance.now() - startedAt;
      options.onProgress?.({ done, total: tasks.length, elapsedMs, etaMs: (elapsedMs / done) * (tasks.length - done) });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(generator.parallel, tasks.length)) }, worker));
  if (failure !== undefined && !options.signal.aborted) throw failure;
  let answered = 0;
  while (answered < tasks.length && answers[answered] !== undefined) answered++;
  return { answers: answers.slice(0, answered) as GeneratedAnswer[], partial: answered < tasks.length, seconds: (performance.now() - startedAt) / 1000 };
}
