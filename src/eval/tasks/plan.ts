import { LmrunError } from "../../errors.js";
import type { BranchRequest, BranchResult, LogitSummary } from "../../engine/branchScoring.js";
import type { ChoiceTask, HellaswagTask, McTask, WinograndeTask } from "./datasets.js";

/**
 * How each task of llama-perplexity's --hellaswag, --winogrande and --multiple-choice is scored,
 * reproduced operation by operation from tools/perplexity/perplexity.cpp (float where it uses float,
 * double where it uses double): which tokens, which logits, which normalisation. Pure: the model
 * enters only through `tokenize` and the logits handed back.
 */

const f32 = Math.fround;

export interface TaskPlan {
  task: ChoiceTask;
  /** Tokens llama-perplexity puts in its batch for this task (the shared prefix once, then each continuation). */
  requiredTokens: number;
  /** Prefix plus the longest continuation: what one sequence must hold. */
  sequenceTokens: number;
  request: BranchRequest;
  /** The task's outcome from the logits. */
  finish(result: BranchResult): TaskOutcome;
}

export interface TaskOutcome {
  correct: boolean;
  /** 0-based choice the model preferred. */
  predicted: number;
  /** Per choice: the length-normalised log-likelihood (Winogrande: its partial-sentence score). */
  scores: number[];
}

/** compute_logprobs(): logit - max - logf(sum(expf(l - max))), in float. */
export function logProbOf(summary: LogitSummary, target: number): number {
  const logit = summary.logits.get(target);
  if (logit === undefined) throw new LmrunError(`llama.cpp returned no logit for token ${target}`);
  return f32(f32(logit - summary.maxLogit) - f32(Math.log(summary.sumExp)));
}

/** log(softmax(row)[token]) as perplexity.cpp's softmax() (double sum of float expf, float probabilities), then logf. */
export function firstTokenLogProb(summary: LogitSummary, token: number): number {
  const logit = summary.logits.get(token);
  if (logit === undefined || summary.sumExpDouble === undefined) throw new LmrunError(`llama.cpp returned no logit for token ${token}`);
  const prob = f32(f32(Math.exp(f32(logit - summary.maxLogit))) / summary.sumExpDouble);
  return f32(Math.log(prob));
}

function commonPrefix(seqs: Uint32Array[]): number {
  const min = Math.min(...seqs.map((s) => s.length));
  let k = 0;
  while (k < min && seqs.every((s) => s[k] === seqs[0]![k])) k++;
  return k;
}

/** Where a logit comes from: -1 = the prefix's last token, else (branch, index within the branch). */
interface Source {
  branch: number;
  pos: number;
}

/** Builds the request: each branch evaluated only as far as a wanted logit needs (llama.cpp also evaluates the unused last token). */
function buildRequest(prefix: Uint32Array, branches: Uint32Array[], pairs: Array<{ source: Source; target: number }>): BranchRequest {
  const prefixTargets = new Set<number>();
  const lengths = branches.map(() => 0);
  const targets: Array<Array<Set<number> | undefined>> = branches.map((b) => Array.from({ length: b.length }, () => undefined));
  for (const { source, target } of pairs) {
    if (source.branch < 0) {
      prefixTargets.add(target);
      continue;
    }
    lengths[source.branch] = Math.max(lengths[source.branch]!, source.pos + 1);
    (targets[source.branch]![source.pos] ??= new Set()).add(target);
  }
  return {
    prefix,
    prefixTargets: [...prefixTargets],
    branches: branches.map((b, i) => ({ tokens: b.subarray(0, lengths[i]), targets: targets[i]!.slice(0, lengths[i]).map((s) => (s ? [...s] : undefined)) })),
  };
}

function summaryAt(result: BranchResult, source: Source): LogitSummary {
  const summary = source.branch < 0 ? result.prefixSummary : result.branches[source.branch]?.[source.pos];
  if (summary === undefined) throw new LmrunError("internal: a wanted logit was not evaluated");
  return summary;
}

/** First maximum wins (strict >), as the loops in perplexity.cpp pick it. */
function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

function badTask(task: ChoiceTask, what: string): LmrunError {
  return new LmrunError(`task ${task.index + 1} of the file: ${what}`, { exitCode: 2, hint: "llama-perplexity would read past its data here; fix or remove the task" });
}

/**
 * HellaSwag and multiple choice: every choice appended to the shared text; per choice the mean
 * log-probability of its tokens, the first from the softmax after the shared prefix.
 * HellaSwag sums in double, multiple choice in float.
 */
function planEndings(task: HellaswagTask | McTask, seqs: Uint32Array[], gold: (predicted: number) => boolean, inFloat: boolean): TaskPlan {
  const cp = commonPrefix(seqs);
  if (cp === 0) throw badTask(task, "the choices share no first token (the model adds no BOS), which llama-perplexity cannot score");
  if (seqs.some((s) => s.length === cp)) throw badTask(task, "one choice adds no token to the shared text");
  const prefix = seqs[0]!.subarray(0, cp);
  const branches = seqs.map((s) => s.subarray(cp));
  // The first token of each choice comes from the softmax of the row after the prefix.
  const firstTokens = branches.map((b) => ({ source: { branch: -1, pos: 0 }, target: b[0]! }));
  const pairs = branches.flatMap((b, s) => Array.from({ length: b.length - 1 }, (_, i) => ({ source: { branch: s, pos: i }, target: b[i + 1]! })));
  return {
    task,
    requiredTokens: cp + branches.reduce((n, b) => n + b.length, 0),
    sequenceTokens: cp + Math.max(...branches.map((b) => b.length)),
    request: buildRequest(prefix, branches, [...firstTokens, ...pairs]),
    finish(result) {
      const afterPrefix = summaryAt(result, { branch: -1, pos: 0 });
      const scores = branches.map((b, s) => {
        let sum = firstTokenLogProb(afterPrefix, b[0]!);
        let count = 1;
        for (let i = 0; i < b.length - 1; i++) {
          const lp = logProbOf(result.branches[s]![i]!, b[i + 1]!);
          sum = inFloat ? f32(sum + lp) : sum + lp;
          count++;
        }
        return inFloat ? f32(sum / count) : sum / count;
      });
      const predicted = argmax(scores);
      return { correct: gold(predicted), predicted, scores };
    },
  };
}

export function planHellaswag(task: HellaswagTask, tokenize: (text: string) => Uint32Array): TaskPlan {
  const seqs = task.endings.map((e) => tokenize(`${task.context} ${e}`));
  return planEndings(task, seqs, (p) => p === task.gold, false);
}

export function planMultipleChoice(task: McTask, tokenize: (text: string) => Uint32Array): TaskPlan {
  const seqs = task.answers.map((a) => tokenize(`${task.question} ${a}`));
  return planEndings(task, seqs, (p) => task.labels[p] === 1, true);
}

/** winogrande_score's k_min_trailing_ctx: with more trailing tokens than this, the choice word itself is not scored. */
const MIN_TRAILING = 3;

/**
 * Winogrande: both sentences scored from the end of the choice word (or from the shared prefix when
 * the sentence is short), mean log-probability in float, the last token left out. The logit indexes
 * are llama.cpp's own, including the one its FIXME names: without skipping the choice word, the
 * second sentence's first score reads the logits after the first sentence's last token.
 */
export function planWinogrande(task: WinograndeTask, tokenize: (text: string) => Uint32Array): TaskPlan {
  const seqs = task.choices.map((c) => tokenize(task.first + c + task.second)) as [Uint32Array, Uint32Array];
  const nBase = task.choices.map((c) => tokenize(task.first + c).length) as [number, number];
  const cp = commonPrefix(seqs);
  if (cp === 0) throw badTask(task, "the two sentences share no first token (the model adds no BOS)");
  const [l0, l1] = [seqs[0].length - cp, seqs[1].length - cp];
  const skipChoice = l0 > MIN_TRAILING && l1 > MIN_TRAILING;
  const branches = [seqs[0].subarray(cp), seqs[1].subarray(cp)];
  // llama.cpp's logit layout: [prefix last][sentence 1 from cp][sentence 2 from cp].
  const sourceOf = (k: number): Source => {
    if (k === 0) return { branch: -1, pos: 0 };
    if (k <= l0) return { branch: 0, pos: k - 1 };
    if (k <= l0 + l1) return { branch: 1, pos: k - l0 - 1 };
    throw badTask(task, "a logit index past the batch");
  };
  const sentences = [0, 1].map((s) => {
    const seq = seqs[s]!;
    const base = skipChoice ? nBase[s]! : cp;
    const last = seq.length - base > 1 ? 1 : 0;
    const pairs: Array<{ source: Source; target: number }> = [];
    for (let j = base - 1; j < seq.length - 1 - last; j++) {
      const k = (s === 0 ? 0 : l0) + j - cp + 1;
      if (k < 0) throw badTask(task, "the choice tokenises differently alone than in the sentence");
      pairs.push({ source: sourceOf(k), target: seq[j + 1]! });
    }
    return { pairs, count: seq.length - base - last };
  });
  return {
    task,
    requiredTokens: cp + l0 + l1,
    sequenceTokens: cp + Math.max(l0, l1),
    request: buildRequest(seqs[0].subarray(0, cp), branches, [...sentences[0]!.pairs, ...sentences[1]!.pairs]),
    finish(result) {
      const scores = sentences.map(({ pairs, count }) => {
        let score = 0;
        for (const { source, target } of pairs) score = f32(score + logProbOf(summaryAt(result, source), target));
        return f32(score / count);
      });
      const predicted = scores[0]! > scores[1]! ? 0 : 1;
      return { correct: predicted + 1 === task.answer, predicted, scores };
    },
  };
}

export function planTask(task: ChoiceTask, tokenize: (text: string) => Uint32Array): TaskPlan {
  switch (task.kind) {
    case "hellaswag":
      return planHellaswag(task, tokenize);
    case "winogrande":
      return planWinogrande(task, tokenize);
    case "mc":
      return planMultipleChoice(task, tokenize);
  }
}
