import { MAX_TOP_LOGPROBS, type GenerateRequest, type PromptTokenLogprob, type TokenLogprob, type TokenProbability } from "../engine/types.js";
import type { Fields } from "./fields.js";
import { badRequest } from "./http.js";

/**
 * Token log-probabilities on the wire: OpenAI's chat form (also ollama's, llama-server's and the
 * Responses API's), and the legacy completions form. The engine gives each answer token's
 * log-probability and the most likely tokens at its position (engine/logprobs.ts).
 */

/** Chat's `logprobs: true` and `top_logprobs` (OpenAI chat completions, ollama's /api/chat and /api/generate). */
export function readLogprobs(f: Fields, api: "openai" | "ollama"): GenerateRequest["logprobs"] {
  const wanted = f.boolean("logprobs") === true;
  const top = f.number("top_logprobs", { integer: true, min: 0, max: MAX_TOP_LOGPROBS });
  if (!wanted) {
    // OpenAI refuses alternatives without the log-probabilities they come with; ollama ignores them.
    if (api === "openai" && top !== undefined && top > 0) throw badRequest('"top_logprobs" needs "logprobs": true', "top_logprobs");
    return undefined;
  }
  return { top: top ?? 0 };
}

/**
 * Legacy completions' `logprobs`: how many alternatives (0: the chosen tokens' alone). An end token the answer
 * stopped at is listed last, with empty text, as vLLM lists it (lm-evaluation-harness drops the last entry as the
 * generated token).
 */
export function readCompletionLogprobs(f: Fields): GenerateRequest["logprobs"] {
  const top = f.number("logprobs", { integer: true, min: 0, max: MAX_TOP_LOGPROBS });
  return top !== undefined ? { top, endToken: true } : undefined;
}

/** A token on the wire: llama-server's fields (OpenAI's and ollama's, and the token's `id`). */
export interface WireTokenProbability {
  id: number;
  token: string;
  logprob: number;
  bytes: number[];
}

/** An answer token with the most likely tokens at its position. */
export interface WireTokenLogprob extends WireTokenProbability {
  top_logprobs: WireTokenProbability[];
}

function probability(p: TokenProbability): WireTokenProbability {
  return { id: p.id, token: p.token, logprob: p.logprob, bytes: p.bytes };
}

/** OpenAI chat's `logprobs.content` items (and ollama's `logprobs`, `lmrun batch`'s): each token with its alternatives. */
export function tokenLogprobs(tokens: readonly TokenLogprob[]): WireTokenLogprob[] {
  return tokens.map((t) => ({ ...probability(t), top_logprobs: t.top.map(probability) }));
}

/**
 * Legacy completions' form: parallel lists of the tokens, their log-probabilities, their alternatives as
 * {text: logprob} and where each starts in the choice's text (`offset`: the echoed prompt's length). The chat
 * form rides along as `content`, as llama-server and ollama answer completions. With `echo`, the prompt's
 * tokens come first (`prompt`), the first of them null as OpenAI gives it when nothing comes before it.
 */
export function completionLogprobs(tokens: readonly TokenLogprob[], offset: number, prompt: readonly PromptTokenLogprob[] = []) {
  const textOffset: number[] = [];
  let at = 0;
  for (const t of prompt) {
    textOffset.push(at);
    at += t.token.length;
  }
  at = offset;
  for (const t of tokens) {
    textOffset.push(at);
    at += t.token.length;
  }
  const all: ReadonlyArray<TokenLogprob | PromptTokenLogprob> = [...prompt, ...tokens];
  return {
    tokens: all.map((t) => t.token),
    token_logprobs: all.map((t) => t.logprob),
    top_logprobs: all.map((t) => (t.top === null ? null : Object.fromEntries(t.top.map((alt) => [alt.token, alt.logprob])))),
    text_offset: textOffset,
    content: all.map((t) => ({ id: t.id, token: t.token, logprob: t.logprob, bytes: t.bytes, top_logprobs: t.top === null ? [] : t.top.map(probability) })),
  };
}
