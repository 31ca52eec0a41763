import type { KldStatistics, ValueWithError } from "./math.js";

/** The `lmrun perplexity --json` schema. Figures are plain numbers; fractions are 0..1, not percent. */

export interface EvaluatedModel {
  path: string;
  fileName: string;
  name: string;
}

export interface PerplexityResult {
  model: EvaluatedModel;
  /** exp(mean NLL) over the scored tokens: llama-perplexity's "Final estimate". */
  ppl: number;
  /** Its ± as llama-perplexity prints it (PPL x standard error of the mean NLL). */
  pplError: number;
  tokensScored: number;
  /** Chunks evaluated (fewer than chunksPlanned only when interrupted). */
  chunks: number;
  chunksPlanned: number;
  ctx: number;
  batchSize: number;
  threads: number;
  /** Tokens in the whole text, BOS included when the model adds one. */
  textTokens: number;
  /** How often the model's most likely next token was the real one. */
  top1Accuracy: number;
  /** Evaluation time, without model loading and tokenisation. */
  seconds: number;
  loadSeconds: number;
  /** True when Ctrl-C stopped the run: the figures cover only the chunks done. */
  partial: boolean;
  /** With --kl-divergence: the comparison with the base file's model. */
  klDivergence?: KldStatistics;
  /**
   * With --base: PPL(model)/PPL(base) from both models' exact per-token NLLs. (klDivergence.pplRatio is
   * llama-perplexity's figure, whose PPL(base) comes from the stored, clamped log-probs.)
   */
  comparison?: { basePpl: number; pplRatio: ValueWithError; lnPplRatio: ValueWithError };
  /** With --kl-divergence-base: the file written. */
  klDivergenceBaseFile?: string;
}

/** `--base MODEL`: one base run and one comparison per model. */
export interface ComparisonResult {
  base: PerplexityResult;
  models: PerplexityResult[];
}

export interface ChunkEvent {
  /** 1-based, as llama-perplexity numbers them. */
  chunk: number;
  chunks: number;
  /** Chunks evaluated side by side in one pass (llama-perplexity's n_seq). */
  chunksPerPass: number;
  /** Running PPL over all chunks so far. */
  ppl: number;
  elapsedMs: number;
  etaMs: number;
}
