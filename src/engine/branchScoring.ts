import type { LlamaContextSequence } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import type { LoadedModel } from "./model.js";
import { textTokenizer, vocabularySize } from "./scoring.js";

/**
 * Scores several continuations ("branches") of one shared prefix, as llama-perplexity's
 * HellaSwag, Winogrande and multiple-choice scores need: the prefix is evaluated once on a context
 * sequence, then each branch is evaluated after it and erased again, so every branch sees the
 * prefix's KV cache and nothing else. Tasks run on separate sequences at once; node-llama-cpp
 * decodes their pending tokens together in one batch.
 */

/** What llama.cpp's compute_logprobs() needs at one position: the wanted tokens' logits, the maximum and sum(expf(l - max)) in float. */
export interface LogitSummary {
  logits: Map<number, number>;
  maxLogit: number;
  sumExp: number;
}

export interface BranchRequest {
  prefix: Uint32Array;
  /** Whether to return the whole logit row after the prefix's last token. */
  prefixRow: boolean;
  /** Tokens whose logits are wanted after the prefix's last token. */
  prefixTargets: number[];
  /** Each branch's tokens, and per token the targets wanted after it (undefined: none). */
  branches: Array<{ tokens: Uint32Array; targets: Array<number[] | undefined> }>;
}

export interface BranchResult {
  prefixRow: Float32Array | undefined;
  prefixSummary: LogitSummary | undefined;
  branches: Array<Array<LogitSummary | undefined>>;
}

export interface BranchScorer {
  readonly vocabSize: number;
  /** Tasks that can be scored at once (one context sequence each). */
  readonly parallel: number;
  /** Tokens one sequence holds: prefix plus its longest branch must fit. */
  readonly sequenceSize: number;
  tokenize(text: string): Uint32Array;
  score(request: BranchRequest, signal?: AbortSignal): Promise<BranchResult>;
}

type Input = Parameters<LlamaContextSequence["controlledEvaluate"]>[0];

export function createBranchScorer(loaded: LoadedModel): BranchScorer {
  const tokenizer = textTokenizer(loaded);
  const vocabSize = vocabularySize(loaded.model);
  const idle: LlamaContextSequence[] = [];
  for (let i = 0; i < loaded.context.totalSequences; i++) idle.push(loaded.context.getSequence());
  const parallel = idle.length;

  const summaryOptions = (targets: number[]) => ({ token: true, logits: { filter: { tokens: targets, includeSelected: true } }, totalLogitWeight: true });

  function summaryOf(next: { token?: number | null; logits?: Map<number, number>; totalLogitWeight?: number } | undefined, where: string): LogitSummary {
    const top = next?.token;
    if (next?.logits === undefined || next.totalLogitWeight === undefined || top === undefined || top === null) {
      throw new LmrunError(`llama.cpp returned no logits ${where}`);
    }
    return { logits: next.logits, maxLogit: next.logits.get(top)!, sumExp: next.totalLogitWeight };
  }

  async function scoreOn(seq: LlamaContextSequence, request: BranchRequest, signal?: AbortSignal): Promise<BranchResult> {
    await seq.clearHistory();
    const { prefix } = request;
    const last = prefix.length - 1;
    const input: Input = Array.from(prefix, (t) => t) as unknown as Input;
    // The whole row is a Map of the vocabulary: asked for only where the score needs it (once per task).
    const wantsLast = request.prefixRow || request.prefixTargets.length > 0;
    if (wantsLast) {
      const generateNext = request.prefixRow ? { logits: true, ...(request.prefixTargets.length > 0 ? { token: true, totalLogitWeight: true } : {}) } : summaryOptions(request.prefixTargets);
      (input as unknown[])[last] = [prefix[last], { generateNext }];
    }
    let prefixRow: Float32Array | undefined;
    let prefixSummary: LogitSummary | undefined;
    await seq.controlledEvaluate(input, {
      onTokenResult(index, result) {
        if (index !== last) return;
        const next = result.next as { token?: number | null; logits?: Map<number, number>; totalLogitWeight?: number };
        if (request.prefixRow) {
          const row = new Float32Array(vocabSize);
          if (next.logits === undefined) return;
          for (const [token, value] of next.logits) row[token] = value;
          prefixRow = row;
        }
        if (request.prefixTargets.length > 0) prefixSummary = summaryOf(next, "after the prefix");
        delete (result.next as { logits?: unknown }).logits;
      },
    });
    if (wantsLast && request.prefixRow && prefixRow === undefined) throw new LmrunError("llama.cpp returned no logits after the prefix");
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
      branches.push(Array.from(branch.tokens, (_, i) => (branch.targets[i]?.length ? summaryOf(results[i]?.next as never, `in branch ${b + 1}`) : undefined)));
      if (b < request.branches.length - 1) await seq.eraseContextTokenRanges([{ start: prefix.length, end: prefix.length + branch.tokens.length }]);
    }
    return { prefixRow, prefixSummary, branches };
  }

  return {
    vocabSize,
    parallel,
    sequenceSize: loaded.context.contextSize,
    tokenize: tokenizer.tokenize,
    async score(request, signal) {
      if (signal?.aborted) throw signal.reason;
      const seq = idle.pop();
      if (seq === undefined) throw new Error(`more than ${parallel} tasks scored at once`);
      try {
        return await scoreOn(seq, request, signal);
      } finally {
        idle.push(seq);
      }
    },
  };
}
