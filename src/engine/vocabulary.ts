import type { LlamaModel } from "node-llama-cpp";
import { LmrunError } from "../errors.js";

/**
 * n_vocab as llama.cpp counts it: the tokenizer's token list (node-llama-cpp has no direct accessor), else
 * the token embedding's rows; `fallback` where neither is there (else an error).
 */
export function vocabularySize(model: LlamaModel, fallback?: number): number {
  const tokens: unknown = model.fileInfo.metadata?.tokenizer?.ggml?.tokens;
  if (Array.isArray(tokens) && tokens.length > 0) return tokens.length;
  const embedding = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
  const dims = embedding?.dimensions;
  if (dims !== undefined && dims.length >= 2) return Number(dims[1]);
  if (fallback !== undefined) return fallback;
  throw new LmrunError("cannot tell the size of this model's vocabulary from its GGUF metadata");
}
