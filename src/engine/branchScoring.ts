import type { LlamaContextSequence } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import type { LoadedModel } from "./model.js";
import { rowOf, textTokenizer } from "./scoring.js";
import { vocabularySize } from "./vocabulary.js";
import { logitTaps, prefixSharing, type LogitTaps, type PrefixSharing } from "./threadpool.js";

/**
 * Scores several continuations ("branches") of one shared prefix, as llama-perplexity's
 * HellaSwag, Winogrande and multiple-choice scores need: every branch sees the prefix's KV cache
 * and nothing else.
 *
 * Two ways, chosen by what the context offers:
 * - shared prefix (a unified KV cache and the threadpool shim's logit taps and prefix sharing,
 *   Linux): as llama-perplexity does it. A task is one llama_decode: the prefix's tokens carry every
 *   branch's sequence id (one set of cells for all) and each branch follows on its own sequence; the
 *   summaries at the scored positions are computed in the decode itself. Several tasks may run in a
 *   round, and their tokens meet in the same decode.
 * - one sequence per task (elsewhere): the prefix, then each branch after it, erased again; the
 *   summaries come through node-llama-cpp's sampling call, one per scored position.
 */

/** What llama.cpp's compute_logprobs() and softmax() need at one position: the wanted tokens' logits, the maximum, and sum(expf(l - max)). */
export interface LogitSummary {
  logits: Map<number, number>;
  maxLogit: number;
  /** Summed in float, as compute_logprobs() does. */
  sumExp: number;
  /** Summed in double, as softmax() does (after the prefix only). */
  sumExpDouble?: number;
}

export interface BranchRequest {
  prefix: Uint32Array;
  /** Tokens whose logits are wanted after the prefix's last token. */
  prefixTargets: number[];
  /** Each branch's tokens, and per token the targets wanted after it (undefined: none). */
  branches: Array<{ tokens: Uint32Array; targets: Array<number[] | undefined> }>;
}

export interface BranchResult {
  prefixSummary: LogitSummary | undefined;
  branches: Array<Array<LogitSummary | undefined>>;
}

export interface BranchScorer {
  readonly vocabSize: number;
  /** Tasks that can be scored at once. */
  readonly parallel: number;
  /** Tokens one sequence holds: prefix plus its longest branch must fit. */
  readonly sequenceSize: number;
  /** "shared prefix" or "one sequence per task" (see above), for --verbose and the bench. */
  readonly method: string;
  tokenize(text: string): Uint32Array;
  /** Scores up to `parallel` tasks together; their results in the same order. */
  scoreRound(requests: BranchRequest[], signal?: AbortSignal): Promise<BranchResult[]>;
}

type Input = Parameters<LlamaContextSequence["controlledEvaluate"]>[0];

/** node-llama-cpp internals the shared-prefix way needs (present in the release lmrun pins; checked before use). */
interface SequenceInternals {
  _sequenceId: number;
  _tokenMeter: unknown;
  _contextShift: unknown;
  /** The sequence's record of the tokens its cells hold, and the position of the next one. */
  _contextTokens: number[];
  _nextTokenIndex: number;
  /** The decode step evaluate() runs: queues the tokens in the context's next batch, then records them as the sequence's. */
  _decodeTokens(tokens: number[], logits: boolean[], evaluationPriority: undefined, tokenMeter: unknown, contextShift: unknown, logitDataMapper: () => null): Promise<unknown>;
}

function internals(seq: LlamaContextSequence): SequenceInternals | undefined {
  const inner = seq as unknown as Partial<SequenceInternals>;
  return typeof inner._sequenceId === "number" && typeof inner._decodeTokens === "function" && Array.isArray(inner._contextTokens) &&
    typeof inner._nextTokenIndex === "number" && inner._tokenMeter !== undefined && inner._contextShift !== undefined
    ? (inner as SequenceInternals)
    : undefined;
}

/**
 * Appends tokens to a sequence without sampling. Not evaluateWithoutGeneratingNewTokens(): it makes a
 * sampler each call, whose n_vocab-entry buffer is fresh memory until the garbage collector frees it
 * (~1.1 ms of page faults on a 32k vocabulary, measured; five calls a task).
 */
function appendTokens(seq: SequenceInternals, tokens: number[]): Promise<unknown> {
  return seq._decodeTokens(tokens, [], undefined, seq._tokenMeter, seq._contextShift, () => null);
}

/**
 * `branchesPerTask`: the most branches a task has (HellaSwag 4, Winogrande 2); `tasksAtOnce`: how
 * many tasks to score at once. The context should hold tasksAtOnce x branchesPerTask sequences.
 */
export function createBranchScorer(loaded: LoadedModel, options: { branchesPerTask: number; tasksAtOnce: number }): BranchScorer {
  const tokenizer = textTokenizer(loaded);
  const vocabSize = vocabularySize(loaded.model);
  const sequences: LlamaContextSequence[] = [];
  for (let i = 0; i < loaded.context.totalSequences; i++) sequences.push(loaded.context.getSequence());
  const taps = logitTaps();
  const sharing = prefixSharing();
  const groupSize = Math.max(1, options.branchesPerTask);
  const inner = sequences.map(internals);
  const common = { vocabSize, sequenceSize: loaded.context.contextSize, tokenize: tokenizer.tokenize };
  if (loaded.kvUnified && taps !== undefined && sharing !== undefined && sequences.length >= groupSize && inner.every((s) => s !== undefined)) {
    const groups: SequenceInternals[][] = [];
    for (let i = 0; i + groupSize <= inner.length && groups.length < options.tasksAtOnce; i += groupSize) groups.push(inner.slice(i, i + groupSize) as SequenceInternals[]);
    return {
      ...common,
      method: "shared prefix",
      parallel: groups.length,
      // The whole cache is emptied after each round, as llama-perplexity clears it after each batch:
      // freeing one task's cells while another's are in use lets a sequence's next tokens land in cells
      // before its earlier ones, and llama.cpp's CPU flash attention then scores some tasks wrongly
      // (logits off by up to 1 on stories260K, measured).
      scoreRound: (requests, signal) =>
        inRound(requests, groups, signal, (group, request) => scoreSharedPrefix(taps, sharing, group, request), () => {
          sharing.clear();
          return Promise.all(sequences.map((seq) => seq.clearHistory()));
        }),
    };
  }
  const singles = sequences.slice(0, Math.max(1, options.tasksAtOnce));
  return {
    ...common,
    method: "one sequence per task",
    parallel: singles.length,
    scoreRound: (requests, signal) => inRound(requests, singles, signal, (seq, request) => scoreOneSequence(seq, vocabSize, request, signal)),
  };
}

/** One round: request k on resource k (a sequence or a group of them), then `cleanUp`. */
async function inRound<R>(
  requests: BranchRequest[],
  resources: R[],
  signal: AbortSignal | undefined,
  run: (resource: R, request: BranchRequest) => Promise<BranchResult>,
  cleanUp?: () => Promise<unknown>,
): Promise<BranchResult[]> {
  if (requests.length > resources.length) throw new Error(`${requests.length} tasks in a round of ${resources.length}`);
  if (signal?.aborted) throw signal.reason;
  try {
    // allSettled: nothing may still be evaluating when the cache is emptied.
    const settled = await Promise.allSettled(requests.map((request, k) => run(resources[k]!, request)));
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    return settled.map((r) => (r as PromiseFulfilledResult<BranchResult>).value);
  } finally {
    await cleanUp?.();
  }
}

function summaryFromTap(values: number[] | null, targets: number[], where: string): LogitSummary {
  if (values === null || values.length !== targets.length + 3) throw new LmrunError(`llama.cpp returned no logits ${where}`);
  return { maxLogit: values[0]!, sumExp: values[1]!, sumExpDouble: values[2]!, logits: new Map(targets.map((token, i) => [token, values[i + 3]!])) };
}

/**
 * One task in one llama_decode, as llama-perplexity does: the first sequence brings the prefix and its
 * branch, the prefix's tokens also carry the other branches' sequences (the shim's prefix sharing: one
 * set of cells for all), and each other sequence brings its branch right after the prefix. The other
 * sequences' records are set to hold the prefix, as a copy from the first would leave them.
 */
async function scoreSharedPrefix(taps: LogitTaps, sharing: PrefixSharing, group: SequenceInternals[], request: BranchRequest): Promise<BranchResult> {
  const { prefix, branches } = request;
  if (branches.length > group.length) throw new Error(`a task with ${branches.length} branches on ${group.length} sequences`);
  const first = group[0]!;
  const outstanding = new Set<number>();
  const tap = (seq: SequenceInternals, position: number, targets: number[]): number => {
    const id = taps.tap(seq._sequenceId, position, targets);
    if (id < 0) throw new LmrunError("could not ask llama.cpp for the logits to score (out of memory?)");
    outstanding.add(id);
    return id;
  };
  const take = (id: number, targets: number[], where: string): LogitSummary => {
    outstanding.delete(id);
    return summaryFromTap(taps.take(id), targets, where);
  };
  try {
    const others = branches.flatMap((branch, b) => (b > 0 && branch.tokens.length > 0 ? [group[b]!] : []));
    if (others.length > 0 && !sharing.share(first._sequenceId, prefix.length, others.map((seq) => seq._sequenceId))) {
      throw new LmrunError("could not share a task's prefix between sequences (out of memory?)");
    }
    const prefixTap = request.prefixTargets.length > 0 ? tap(first, prefix.length - 1, request.prefixTargets) : -1;
    // Every branch is queued before the context's next batch goes out, the first sequence first: one decode.
    const scored = branches.map((branch, b) => {
      const seq = group[b]!;
      const ids = branch.targets.map((targets, i) => (targets?.length ? tap(seq, prefix.length + i, targets) : -1));
      const tokens = b === 0 ? [...prefix, ...branch.tokens] : Array.from(branch.tokens);
      if (b > 0 && tokens.length > 0) {
        seq._contextTokens = Array.from(prefix);
        seq._nextTokenIndex = prefix.length;
      }
      if (tokens.length === 0) return Promise.resolve([]);
      return appendTokens(seq, tokens).then(() => ids.map((id, i) => (id < 0 ? undefined : take(id, branch.targets[i]!, `in branch ${b + 1}`))));
    });
    const results = await Promise.all(scored);
    const prefixSummary = prefixTap >= 0 ? take(prefixTap, request.prefixTargets, "after the prefix") : undefined;
    return { prefixSummary, branches: results };
  } finally {
    for (const id of outstanding) taps.take(id); // frees taps a failed evaluation left behind
  }
}

async function scoreOneSequence(seq: LlamaContextSequence, vocabSize: number, request: BranchRequest, signal?: AbortSignal): Promise<BranchResult> {
  await seq.clearHistory();
  const { prefix } = request;
  const last = prefix.length - 1;
  const input: Input = Array.from(prefix, (t) => t) as unknown as Input;
  // After the prefix the whole row is asked for too (once per task): softmax() sums in double,
  // node-llama-cpp's sum (compute_logprobs()'s) is in float.
  if (request.prefixTargets.length > 0) (input as unknown[])[last] = [prefix[last], { generateNext: { logits: true, token: true, totalLogitWeight: true } }];
  let prefixSummary: LogitSummary | undefined;
  await seq.controlledEvaluate(input, {
    onTokenResult(index, result) {
      if (index !== last) return;
      const next = result.next as { token?: number | null; logits?: Map<number, number>; totalLogitWeight?: number };
      if (next.logits === undefined || next.totalLogitWeight === undefined) return;
      prefixSummary = summaryOfRow(next.logits, vocabSize, request.prefixTargets, next.totalLogitWeight);
      delete (result.next as { logits?: unknown }).logits;
    },
  });
  if (request.prefixTargets.length > 0 && prefixSummary === undefined) throw new LmrunError("llama.cpp returned no logits after the prefix");
  const summaryOptions = (targets: number[]) => ({ token: true, logits: { filter: { tokens: targets, includeSelected: true } }, totalLogitWeight: true });
  const branches: Array<Array<LogitSummary | undefined>> = [];
  for (const [b, branch] of request.branches.entries()) {
    if (signal?.aborted) throw signal.reason;
    if (branch.tokens.length === 0) {
      branches.push([]);
      continue;
    }
    const items = Array.from(branch.tokens, (token, i) => {
      const targets = branch.targets[i];
      return targets && targets.length > 0 ? [token, { generateNext: summaryOptions(targets) }] : token;
    }) as unknown as Input;
    const results = await seq.controlledEvaluate(items);
    branches.push(Array.from(branch.tokens, (_, i) => (branch.targets[i]?.length ? summaryOfSample(results[i]?.next as never, `in branch ${b + 1}`) : undefined)));
    if (b < request.branches.length - 1) await seq.eraseContextTokenRanges([{ start: prefix.length, end: prefix.length + branch.tokens.length }]);
  }
  return { prefixSummary, branches };
}

/** The summary of a whole row, with softmax()'s double sum of the float exponentials. */
function summaryOfRow(logits: Map<number, number>, vocabSize: number, targets: number[], sumExp: number): LogitSummary {
  const row = rowOf(logits, vocabSize);
  let max = row[0]!;
  for (let i = 1; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sumExpDouble = 0;
  for (let i = 0; i < row.length; i++) sumExpDouble += Math.fround(Math.exp(Math.fround(row[i]! - max)));
  return { maxLogit: max, sumExp, sumExpDouble, logits: new Map(targets.map((t) => [t, row[t]!])) };
}

/** The summary node-llama-cpp's sampling call hands back (the top token's logit is the maximum). */
function summaryOfSample(next: { token?: number | null; logits?: Map<number, number>; totalLogitWeight?: number } | undefined, where: string): LogitSummary {
  const top = next?.token;
  if (next?.logits === undefined || next.totalLogitWeight === undefined || top === undefined || top === null) {
    throw new LmrunError(`llama.cpp returned no logits ${where}`);
  }
  return { logits: next.logits, maxLogit: next.logits.get(top)!, sumExp: next.totalLogitWeight };
}
