import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { PromptTooLongError, ownPromptTokens, promptTokensOf } from "./generate.js";
import { tokenWithLogprob } from "./logprobs.js";
import type { LoadedModel } from "./model.js";
import { AbortedWhileQueuedError } from "./scheduler/slotScheduler.js";
import type { GenerateRequest, PromptTokenLogprob } from "./types.js";

/**
 * A prompt's own log-probabilities: at each position, the log-softmax of the model's raw logits for the token
 * that comes next, and the most likely tokens there (OpenAI's legacy completions with `echo` and `logprobs`,
 * which lm-evaluation-harness's loglikelihood tasks read; llama-server refuses `echo`).
 *
 * node-llama-cpp's controlledEvaluate() gives, per position, the logits of chosen tokens (the next one, the
 * highest ones) and sum(exp(logit - max)), from which those log-probabilities are exact without the whole
 * vocabulary reaching JavaScript. Every position needs its logits, so nothing a slot's cache holds can be
 * used: the sequence starts empty.
 *
 * Not on the slots' context: a generation context reserves logits for one token a sequence (the threadpool
 * shim's limitOutputs, as llama-server does), and llama.cpp aborts the process on a batch that wants more
 * (GGML_ASSERT in output_reserve, measured). A context of its own, one sequence and batches of
 * POSITIONS_PER_CALL, scores prompts one at a time.
 */

/**
 * Positions evaluated per call. llama.cpp keeps an output row (the vocabulary's logits) for each position that
 * asks for one and grows its buffer to the largest batch of them: 64 rows are 8 MB for a 32k vocabulary,
 * 39 MB for a 152k one, where a whole 512-token batch would hold 8x that for as long as the context lives.
 */
const POSITIONS_PER_CALL = 64;

type ControlledInput = Parameters<LlamaContextSequence["controlledEvaluate"]>[0];

/** Scores `tokens` on the sequence (emptied first): entry i is token i's, given tokens 0..i-1 (entry 0's is null). */
export async function scorePromptTokens(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  tokens: readonly Token[],
  top: number,
  signal?: AbortSignal,
): Promise<PromptTokenLogprob[]> {
  await sequence.clearHistory();
  if (tokens.length === 0) return [];
  const scores: PromptTokenLogprob[] = [{ ...tokenWithLogprob(model, tokens[0]!, 0), logprob: null, top: null }];
  for (let start = 0; start < tokens.length; start += POSITIONS_PER_CALL) {
    if (signal?.aborted) throw new AbortedWhileQueuedError("the request ended while its prompt was scored");
    const end = Math.min(tokens.length, start + POSITIONS_PER_CALL);
    const input: Array<Token | [Token, object]> = [];
    for (let i = start; i < end; i++) {
      const next = tokens[i + 1];
      input.push(
        next === undefined
          ? tokens[i]!
          : // The highest logit comes as the first of includeTop's (includeMax alone returns the maximum's logit
            // for the target too: node-llama-cpp 3.22, measured).
            [tokens[i]!, { generateNext: { logits: { filter: { tokens: [next], includeTop: Math.max(1, top) } }, totalLogitWeight: true } }],
      );
    }
    const results = await sequence.controlledEvaluate(input as ControlledInput);
    for (let i = start; i < end && i + 1 < tokens.length; i++) {
      const next = results[i - start]?.next;
      const target = tokens[i + 1]!;
      const logits = next?.logits;
      const weight = next?.totalLogitWeight;
      const targetLogit = logits?.get(target);
      if (logits === undefined || weight === undefined || !(weight > 0) || targetLogit === undefined) {
        throw new LmrunError(`llama.cpp returned no logits for position ${i} of the prompt`);
      }
      // The map is sorted, highest logit first: the first is the maximum the weight was summed against.
      const ranked = [...logits.entries()];
      const logNormalizer = ranked[0]![1] + Math.log(weight);
      scores.push({
        ...tokenWithLogprob(model, target, targetLogit - logNormalizer),
        top: ranked.slice(0, top).map(([token, logit]) => tokenWithLogprob(model, token, logit - logNormalizer)),
      });
    }
  }
  return scores;
}

/**
 * A loaded model's prompt scorer: its context (one sequence) is made on first use and kept until dispose();
 * requests take turns on it. It holds the longest prompt seen so far, rounded up to a power of two from 512 and
 * at most a slot's context, and is made again, larger, for a longer one: lm-evaluation-harness's prompts are a
 * few hundred tokens, and a slot's whole context (thousands of tokens of KV cache) would stay unused.
 */
export class PromptScorer {
  private context: Promise<LlamaContext> | undefined;
  private contextHolds = 0;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly loaded: LoadedModel) {}

  /** The request's own prompt tokens (promptTokensOf's, less a beginning token lmrun put first), scored. */
  async score(request: GenerateRequest, top: number, signal?: AbortSignal): Promise<PromptTokenLogprob[]> {
    const tokens = await promptTokensOf(this.loaded, request);
    const contextSize = this.loaded.context.contextSize;
    if (tokens.length >= contextSize) throw new PromptTooLongError(`the prompt is ${tokens.length} tokens but each slot's context holds ${contextSize}`, "prompt");
    const mine = this.turn.catch(() => undefined).then(async () => {
      if (signal?.aborted) throw new AbortedWhileQueuedError("the request ended while it waited to score its prompt");
      if (this.context !== undefined && tokens.length >= this.contextHolds) {
        const smaller = await this.context.catch(() => undefined);
        this.context = undefined;
        await smaller?.dispose();
      }
      if (this.context === undefined) {
        const size = Math.min(contextSize, Math.max(512, 2 ** Math.ceil(Math.log2(tokens.length + 1))));
        this.contextHolds = size;
        const created = this.loaded.model.createContext({
          contextSize: size,
          batchSize: POSITIONS_PER_CALL,
          sequences: 1,
          threads: { ideal: this.loaded.summary.batchThreads, min: this.loaded.summary.batchThreads },
        });
        // A context that could not be made (memory) is tried again by the next request.
        created.catch(() => {
          if (this.context === created) this.context = undefined;
        });
        this.context = created;
      }
      const context = await this.context;
      const sequence = context.getSequence();
      try {
        return await scorePromptTokens(this.loaded.model, sequence, tokens, top, signal);
      } finally {
        sequence.dispose();
      }
    });
    this.turn = mine;
    const scores = await mine;
    return scores.slice(tokens.length - ownPromptTokens(this.loaded, request, tokens));
  }

  async dispose(): Promise<void> {
    await this.turn.catch(() => undefined);
    const context = await this.context?.catch(() => undefined);
    this.context = undefined;
    await context?.dispose();
  }
}
