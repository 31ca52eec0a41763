import type { Token } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import type { LoadedModel } from "./model.js";
import { tokenBytes } from "./logprobs.js";
import { vocabularySize } from "./vocabulary.js";

/**
 * A loaded model's tokenizer for clients that count or build prompts themselves: llama-server's /tokenize and
 * /detokenize, and vLLM's /tokenize, /detokenize and /tokenizer_info (lm-evaluation-harness's remote tokenizer).
 */

/** Ids a client sent that are not this model's tokens; `field` names the request's field (the server's 400 `param`). */
export class TokenIdsError extends LmrunError {
  constructor(
    message: string,
    hint: string,
    readonly field: string,
  ) {
    super(message, { exitCode: 2, hint });
  }
}

/** Ids that a client sent as this model's tokens: every one an index of its vocabulary, or a 400 that says which is not. */
export function checkTokenIds(loaded: LoadedModel, ids: readonly number[], what: string, hint: string, field: string): void {
  const vocabulary = vocabularySize(loaded.model, 0);
  const bad = ids.find((token) => !Number.isInteger(token) || token < 0 || (vocabulary > 0 && token >= vocabulary));
  if (bad !== undefined) throw new TokenIdsError(`${what} hold ${bad}, which is not a token of this model (its vocabulary has ${vocabulary})`, hint, field);
}

/**
 * Text to token ids as llama.cpp's tokenizer gives them: `addSpecial` puts the beginning (and, for vocabularies
 * that want one, end) token around it; `parseSpecial` reads special tokens written in the text as those tokens.
 */
export function tokenizeText(loaded: LoadedModel, text: string, options: { addSpecial: boolean; parseSpecial: boolean }): number[] {
  const { model } = loaded;
  const tokens: number[] = [...model.tokenize(text, options.parseSpecial)];
  if (!options.addSpecial) return tokens;
  const { bos, eos, shouldPrependBosToken, shouldAppendEosToken } = model.tokens;
  return [...(shouldPrependBosToken && bos !== null ? [bos] : []), ...tokens, ...(shouldAppendEosToken && eos !== null ? [eos] : [])];
}

/** Token ids to text (special tokens as their text, as llama-server's /detokenize). */
export function detokenizeIds(loaded: LoadedModel, ids: readonly number[]): string {
  checkTokenIds(loaded, ids, '"tokens"', "Send ids this model's /tokenize gave", "tokens");
  return loaded.model.detokenize(ids as Token[], true);
}

/** A token-id prompt as the text an echo shows (special tokens, such as the beginning one, left out). */
export function promptTextOf(loaded: LoadedModel, ids: readonly number[]): string {
  return loaded.model.detokenize(ids as Token[], false);
}

/** A token's text, or its bytes where they are not whole UTF-8 characters (llama-server's `with_pieces`). */
export function tokenPiece(loaded: LoadedModel, token: number): string | number[] {
  // An answer token's text keeps an SPM token's word-start space (" Once"), as llama.cpp's token_to_piece does.
  const bytes = tokenBytes(loaded.model, token as Token);
  // Control tokens (<s>) have no text there: their own.
  if (bytes.length === 0) return loaded.model.detokenize([token as Token], true);
  const text = Buffer.from(bytes).toString("utf8");
  return text.includes("\uFFFD") ? Array.from(bytes) : text;
}

/** What a client-side tokenizer needs to know (vLLM's /tokenizer_info). */
export function tokenizerFacts(loaded: LoadedModel): { bosToken: string | null; eosToken: string | null; chatTemplate: string | null; contextSize: number; vocabularySize: number } {
  const { model } = loaded;
  return {
    bosToken: model.tokens.bosString,
    eosToken: model.tokens.eosString,
    chatTemplate: model.fileInfo.metadata?.tokenizer?.chat_template ?? null,
    contextSize: loaded.context.contextSize,
    vocabularySize: vocabularySize(model, 0),
  };
}
