import type { LlamaContextSequence, LlamaModel } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import type { LoadedModel } from "./model.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";
import { vocabularySize } from "./vocabulary.js";

/**
 * Evaluates whole chunks of tokens and hands back what perplexity needs from each scored
 * position's logits. Each chunk starts from an empty KV cache at position 0, as
 * llama-perplexity's chunks do. Positions `first .. chunk.length - 2` are scored: the logits at
 * position i predict token i + 1.
 */

/** Per scored position: enough to compute log_softmax of the real next token, plus the argmax. */
export interface TargetScores {
  targetLogit: Float32Array;
  maxLogit: Float32Array;
  /** sum(exp(logit - max)) over the vocabulary. */
  sumExp: Float64Array;
  argmax: Int32Array;
}

export interface ChunkScorer {
  readonly vocabSize: number;
  /** How many chunks may be scored at once (the context's sequences). */
  readonly parallel: number;
  readonly contextSize: number;
  /** The token that replaces each chunk's first token, when the vocabulary adds BOS. */
  readonly bosToken: number | undefined;
  /** The whole text as llama-perplexity tokenises it: BOS when the vocabulary adds one, special tokens as text. */
  tokenize(text: string): Uint32Array;
  scoreTargets(chunk: Uint32Array, first: number, signal?: AbortSignal): Promise<TargetScores>;
  /** Full logit rows for the scored positions, one Float32Array of vocabSize each. */
  scoreFull(chunk: Uint32Array, first: number, signal?: AbortSignal): Promise<Float32Array[]>;
}

/**
 * Text to tokens as llama.cpp's common_tokenize(ctx, text, true) in llama-perplexity: BOS when the
 * vocabulary adds one, special tokens as text. Models that append EOS are refused (as there).
 */
export function textTokenizer(loaded: LoadedModel): { bosToken: number | undefined; tokenize(text: string): Uint32Array } {
  const model: LlamaModel = loaded.model;
  if (model.tokens.shouldAppendEosToken) {
    throw new LmrunError(`${loaded.summary.fileName}'s vocabulary appends EOS to every text, which perplexity cannot score`, {
      hint: "llama-perplexity refuses such models too",
    });
  }
  const bos = model.tokens.bos;
  const addsBos = model.tokens.shouldPrependBosToken && bos !== null;
  return {
    bosToken: addsBos ? bos! : undefined,
    tokenize(text) {
      const tokens = model.tokenize(text, false);
      const out = new Uint32Array(tokens.length + (addsBos ? 1 : 0));
      if (addsBos) out[0] = bos!;
      out.set(tokens as unknown as number[], addsBos ? 1 : 0);
      return out;
    },
  };
}

export function createChunkScorer(loaded: LoadedModel): ChunkScorer {
  const model: LlamaModel = loaded.model;
  const tokenizer = textTokenizer(loaded);
  const bos = tokenizer.bosToken;
  const addsBos = bos !== undefined;
  const vocabSize = vocabularySize(model);
  // One sequence per chunk in flight: node-llama-cpp decodes concurrent sequences in one batch
  // (llama-perplexity's n_seq) and runs their samplers side by side.
  const idle: LlamaContextSequence[] = [];
  for (let i = 0; i < loaded.context.totalSequences; i++) idle.push(loaded.context.getSequence());
  const parallel = idle.length;

  type EvaluateOptions = Parameters<LlamaContextSequence["controlledEvaluate"]>[1];

  async function evaluate<T>(chunk: Uint32Array, first: number, generateNext: (target: number) => T, signal?: AbortSignal, options?: EvaluateOptions) {
    if (signal?.aborted) throw signal.reason;
    const seq = idle.pop();
    if (seq === undefined) throw new Error(`more than ${parallel} chunks scored at once`);
    try {
      return await evaluateOn(seq, chunk, first, generateNext, options);
    } finally {
      idle.push(seq);
    }
  }

  async function evaluateOn<T>(seq: LlamaContextSequence, chunk: Uint32Array, first: number, generateNext: (target: number) => T, options?: EvaluateOptions) {
    await seq.clearHistory();
    const input: Array<number | [number, { generateNext: T }]> = new Array(chunk.length);
    for (let i = 0; i < chunk.length; i++) {
      const token = i === 0 && addsBos ? bos! : chunk[i]!;
      input[i] = i >= first && i < chunk.length - 1 ? [token, { generateNext: generateNext(chunk[i + 1]!) }] : token;
    }
    // The cast: node-llama-cpp's Token is a branded number.
    return seq.controlledEvaluate(input as Parameters<LlamaContextSequence["controlledEvaluate"]>[0], options);
  }

  return {
    vocabSize,
    parallel,
    contextSize: loaded.context.contextSize,
    bosToken: bos,
    tokenize: tokenizer.tokenize,
    async scoreTargets(chunk, first, signal) {
      // The greedy pick is the argmax; asking for its logit and the target's avoids sorting the vocabulary.
      const results = await evaluate(
        chunk,
        first,
        (target) => ({ token: true, logits: { filter: { tokens: [target], includeSelected: true } }, totalLogitWeight: true }),
        signal,
      );
      const n = chunk.length - 1 - first;
      const scores: TargetScores = {
        targetLogit: new Float32Array(n),
        maxLogit: new Float32Array(n),
        sumExp: new Float64Array(n),
        argmax: new Int32Array(n),
      };
      for (let k = 0; k < n; k++) {
        const next = results[first + k]?.next;
        const target = chunk[first + k + 1]!;
        const top = next?.token;
        if (next?.logits === undefined || next.totalLogitWeight === undefined || top === undefined || top === null) {
          throw new LmrunError(`llama.cpp returned no logits for position ${first + k} of a chunk`);
        }
        scores.targetLogit[k] = next.logits.get(target as never) ?? Number.NaN;
        scores.maxLogit[k] = next.logits.get(top) ?? Number.NaN;
        scores.sumExp[k] = next.totalLogitWeight;
        scores.argmax[k] = top;
      }
      return scores;
    },
    async scoreFull(chunk, first, signal) {
      const rows: Array<Float32Array | undefined> = new Array(chunk.length - 1 - first);
      // Each position's logits arrive as a Map of the whole vocabulary: copy it into a row and drop
      // it at once, or a chunk's worth of Maps (255 x n_vocab entries) stays alive until the end.
      await evaluate(chunk, first, () => ({ logits: true }), signal, {
        onTokenResult(index, result) {
          const logits = result.next.logits;
          if (logits === undefined || index < first) return;
          rows[index - first] = rowOf(logits, vocabSize);
          delete result.next.logits;
        },
      });
      return rows.map((row, k) => {
        if (row === undefined) throw new LmrunError(`llama.cpp returned no logits for position ${first + k} of a chunk`);
        return row;
      });
    },
  };
}

/** A logit row from the Map node-llama-cpp hands back (token -> logit). */
export function rowOf(logits: Map<number, number>, vocabSize: number): Float32Array {
  const row = new Float32Array(vocabSize);
  for (const [token, value] of logits) row[token] = value;
  return row;
}

/** The tokenizer's token strings from a GGUF header, without loading the weights (for vocabulary checks). */
export async function readVocabularyTokens(modelPath: string): Promise<readonly string[] | undefined> {
  const { readGgufFileInfo } = await loadNodeLlamaCpp();
  const info = await readGgufFileInfo(modelPath, { sourceType: "filesystem", logWarnings: false });
  const tokens: unknown = info.metadata?.tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? (tokens as string[]) : undefined;
}
