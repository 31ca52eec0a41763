import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { MAX_TOP_LOGPROBS, type TokenLogprob, type TokenProbability } from "./types.js";

/**
 * Token log-probabilities of a generation (OpenAI's and ollama's `logprobs`, `top_logprobs`).
 *
 * node-llama-cpp's LlamaChat and LlamaCompletion generate through their sequence's `evaluate()` and
 * report no probabilities; the sequence's `evaluateWithMetadata()` does (the selected token's, or the
 * whole distribution after the sampler chain: at temperature 0 that is the softmax of the raw logits
 * over the vocabulary, llama-server's `logprobs`). recordProbabilities() routes the request's evaluate()
 * calls through it. The answer's text then says which sampled tokens it is made of: thoughts, a stop
 * text, markers and end-of-turn tokens are sampled too, but are not the answer (answer()).
 */

/** A log-probability as JSON can carry it: log(0) is -Infinity, which JSON has not (llama-server writes float's lowest). */
const LOG_ZERO = -9999;

interface Sampled {
  entry: TokenLogprob;
  bytes: Uint8Array;
}

interface EvaluationOutput {
  token: Token;
  confidence?: number;
  probabilities?: Map<Token, number>;
}

export class LogprobRecorder {
  /** Sampled tokens not yet found in the text shown. */
  private pending: Sampled[] = [];
  /**
   * A token that ran past the end of the last chunk, and its bytes not shown yet: it is the answer's if the
   * next chunk starts with them (a character or a held-back text split across chunks), not if a stop text
   * cut it (llama-server leaves a stop text's tokens out too).
   */
  private straddling: { entry: TokenLogprob; rest: Uint8Array } | undefined;
  /** The answer's tokens, in order. */
  readonly answerTokens: TokenLogprob[] = [];
  private readonly pieces: TokenPieces;

  constructor(
    model: LlamaModel,
    /** How many of the most likely tokens to give at each position (0: the selected token's alone). */
    readonly top: number,
  ) {
    this.pieces = piecesOf(model);
  }

  /** What evaluateWithMetadata is asked for: the whole distribution only when alternatives are wanted (it costs). */
  get metadata(): { confidence: true } | { probabilities: true } {
    return this.top > 0 ? { probabilities: true } : { confidence: true };
  }

  /** A sampled token and its probabilities. */
  sampled(output: EvaluationOutput): void {
    const probability = output.probabilities?.get(output.token) ?? output.confidence ?? 0;
    const top: TokenProbability[] = [];
    if (output.probabilities !== undefined) {
      // The map is sorted, most likely first.
      for (const [token, p] of output.probabilities) {
        if (top.length >= this.top) break;
        top.push(this.pieces.probability(token, p));
      }
    }
    const selected = this.pieces.probability(output.token, probability);
    this.pending.push({ entry: { ...selected, top }, bytes: this.pieces.bytes(output.token) });
  }

  /**
   * The end-of-generation token the answer stopped at (sampled, never shown), as the answer's last token; undefined
   * when the last token sampled is not one.
   */
  endToken(isEnd: (token: Token) => boolean): TokenLogprob | undefined {
    const last = this.pending.at(-1);
    if (last === undefined || !isEnd(last.entry.id as Token)) return undefined;
    this.pending = [];
    this.answerTokens.push(last.entry);
    return last.entry;
  }

  /** The tokens sampled so far were not shown (a first answer dropped for the thoughts to come first). */
  discardPending(): void {
    this.pending = [];
    this.straddling = undefined;
  }

  /** Thought text shown apart: its tokens are not the answer's. */
  thought(text: string): void {
    this.take(text);
  }

  /** Answer text shown: the tokens it is made of, in order. */
  answer(text: string): TokenLogprob[] {
    const tokens = this.take(text);
    this.answerTokens.push(...tokens);
    return tokens;
  }

  /**
   * The pending tokens that make up `text`, matched byte by byte. A token that is not there (a marker, an
   * end-of-turn token, a held-back stop text) is skipped when a later one is; one that runs past the text's
   * end waits for the next chunk (see straddling).
   */
  private take(text: string): TokenLogprob[] {
    let buffer = utf8.encode(text);
    const taken: TokenLogprob[] = [];
    if (this.straddling !== undefined) {
      const { entry, rest } = this.straddling;
      this.straddling = undefined;
      if (startsWith(buffer, 0, rest)) {
        taken.push(entry);
        buffer = buffer.subarray(rest.length);
      }
    }
    let position = 0;
    while (position < buffer.length && this.pending.length > 0) {
      const match = this.nextMatch(buffer, position);
      if (match === undefined) break;
      const { index, length, overrun } = match;
      const sampled = this.pending.splice(0, index + 1).at(-1)!;
      position += length;
      if (overrun > 0) this.straddling = { entry: sampled.entry, rest: sampled.bytes.subarray(sampled.bytes.length - overrun) };
      else taken.push(sampled.entry);
    }
    return taken;
  }

  /** The first pending token (looking a few ahead) found at `position`. */
  private nextMatch(buffer: Uint8Array, position: number): { index: number; length: number; overrun: number } | undefined {
    const lookAhead = Math.min(this.pending.length, 8);
    for (let index = 0; index < lookAhead; index++) {
      const bytes = this.pending[index]!.bytes;
      if (bytes.length === 0) continue;
      if (startsWith(buffer, position, bytes)) return { index, length: bytes.length, overrun: 0 };
      const rest = buffer.length - position;
      if (bytes.length > rest && startsWith(bytes, 0, buffer.subarray(position))) return { index, length: rest, overrun: bytes.length - rest };
      // A word-start space the text does not show (an answer trimmed at its start).
      if (bytes[0] === 0x20 && bytes.length > 1 && startsWith(buffer, position, bytes.subarray(1))) return { index, length: bytes.length - 1, overrun: 0 };
    }
    return undefined;
  }
}

function startsWith(buffer: Uint8Array, position: number, prefix: Uint8Array): boolean {
  if (buffer.length - position < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buffer[position + i] !== prefix[i]) return false;
  return true;
}

const utf8 = new TextEncoder();

/**
 * Routes the sequence's evaluate() through evaluateWithMetadata() until the returned function is called,
 * recording each sampled token's probabilities. The sequence is the request's alone meanwhile (a slot).
 */
export function recordProbabilities(sequence: LlamaContextSequence, recorder: LogprobRecorder): () => void {
  if (recorder.top > 0) topProbabilitiesOnly(sequence.context);
  const target = sequence as unknown as { evaluate: LlamaContextSequence["evaluate"] };
  target.evaluate = async function* (tokens, options) {
    const outputs = sequence.evaluateWithMetadata(tokens, recorder.metadata, options);
    let input: Token | Token[] | void = undefined;
    try {
      while (true) {
        const { value, done } = await outputs.next(input);
        if (done) return;
        recorder.sampled(value as EvaluationOutput);
        input = yield value.token;
      }
    } finally {
      await outputs.return();
    }
  };
  // The prototype's evaluate() again.
  return () => void delete (target as { evaluate?: unknown }).evaluate;
}

type SampleToken = (batchLogitIndex: number, sampler: unknown, probabilities?: boolean, confidence?: boolean, logits?: unknown, totalLogitWeight?: boolean) => Promise<unknown>;
const trimmedContexts = new WeakSet<object>();

/**
 * Asked for probabilities, node-llama-cpp's native sampleToken returns the whole vocabulary's (a 32k-entry
 * array, then a Map: +30 ms a token on the 135M model, measured; llama-server's cost is ~0). Its own
 * top-logits option gives the MAX_TOP_LOGPROBS highest logits and the softmax's sum over the same candidates
 * instead, from which those tokens' probabilities are exact; the selected token's is its confidence. Only
 * LogprobRecorder asks for probabilities in lmrun, so the context's sampleToken answers such calls so.
 * Left as it is if node-llama-cpp's internals are not what this expects (the slow path is still right).
 */
function topProbabilitiesOnly(context: LlamaContextSequence["context"]): void {
  const native = (context as unknown as { _ctx?: { sampleToken?: SampleToken } })._ctx;
  if (native === undefined || typeof native.sampleToken !== "function" || trimmedContexts.has(native)) return;
  trimmedContexts.add(native);
  const sampleToken = native.sampleToken.bind(native);
  const trimmed: SampleToken = async (batchLogitIndex, sampler, probabilities, confidence, ...rest) => {
    if (probabilities !== true || rest.length > 0) return sampleToken(batchLogitIndex, sampler, probabilities, confidence, ...rest);
    const result = await sampleToken(batchLogitIndex, sampler, false, true, [[], false, false, false, MAX_TOP_LOGPROBS], true);
    if (!Array.isArray(result)) return result;
    const [token, , selected, logits, sum] = result as [number, unknown, number | undefined, number[] | undefined, number | undefined];
    if (!Array.isArray(logits) || logits.length < 2 || typeof sum !== "number" || !(sum > 0)) return [token, undefined, confidence ? selected : undefined];
    // Sorted, highest first: the first is the maximum the sum was taken against.
    const highest = logits[1]!;
    const pairs: number[] = [];
    let hasSelected = false;
    for (let i = 0; i + 1 < logits.length; i += 2) {
      pairs.push(logits[i]!, Math.exp(logits[i + 1]! - highest) / sum);
      if (logits[i] === token) hasSelected = true;
    }
    if (!hasSelected && selected !== undefined) pairs.push(token, selected);
    return [token, pairs, confidence ? selected : undefined];
  };
  try {
    // The addon's methods are read-only on its prototype: an own property shadows it.
    Object.defineProperty(native, "sampleToken", { value: trimmed, configurable: true, writable: true });
  } catch {
    // Not extensible: the whole distribution it is.
  }
}

/** A token's bytes as llama.cpp's token_to_piece gives them (an SPM token with its word-start space). */
export function tokenBytes(model: LlamaModel, token: Token): Uint8Array {
  return piecesOf(model).bytes(token);
}

/** A token with its log-probability, its text and bytes as an answer token's (prompt scoring's entries). */
export function tokenWithLogprob(model: LlamaModel, token: Token, logprob: number): TokenProbability {
  return { ...piecesOf(model).probability(token, 1), logprob: Number.isFinite(logprob) ? logprob : LOG_ZERO };
}

/** Each token's text and bytes as llama.cpp's token_to_piece gives them (llama-server's `token` and `bytes`). */
interface TokenPieces {
  bytes(token: Token): Uint8Array;
  probability(token: Token, probability: number): TokenProbability;
}

const piecesByModel = new WeakMap<LlamaModel, TokenPieces>();

function piecesOf(model: LlamaModel): TokenPieces {
  let pieces = piecesByModel.get(model);
  if (pieces === undefined) piecesByModel.set(model, (pieces = tokenPieces(model)));
  return pieces;
}

function tokenPieces(model: LlamaModel): TokenPieces {
  const cache = new Map<Token, { bytes: Uint8Array; text: string; list: number[] }>();
  const vocabulary: unknown = model.fileInfo.metadata?.tokenizer?.ggml?.tokens;
  const tokenizerModel: unknown = model.fileInfo.metadata?.tokenizer?.ggml?.model;
  // A plain token to read each one after: alone, an SPM tokeniser's token loses its word-start space.
  const anchor = model.tokenize("a", false).at(-1);
  const pieceOf = (token: Token) => {
    let piece = cache.get(token);
    if (piece !== undefined) return piece;
    let text = anchor !== undefined ? model.detokenize([token], false, [anchor]) : model.detokenize([token], false);
    let bytes: Uint8Array = utf8.encode(text);
    // Part of a character: its own bytes are in the vocabulary (SPM's <0xE2>, byte-level BPE's characters).
    if (text.includes("\uFFFD") && Array.isArray(vocabulary) && typeof vocabulary[token] === "string") {
      const raw = rawBytes(vocabulary[token] as string, tokenizerModel);
      if (raw !== undefined) {
        bytes = raw;
        text = validUtf8Prefix(raw);
      }
    }
    piece = { bytes, text, list: Array.from(bytes) };
    if (cache.size < 65536) cache.set(token, piece);
    return piece;
  };
  return {
    bytes: (token) => pieceOf(token).bytes,
    probability: (token, probability) => {
      const piece = pieceOf(token);
      return { id: token, token: piece.text, bytes: piece.list, logprob: probability > 0 ? Math.log(probability) : LOG_ZERO };
    },
  };
}

/** A vocabulary entry's bytes, for SPM byte tokens and byte-level BPE; undefined for others. */
function rawBytes(entry: string, tokenizerModel: unknown): Uint8Array | undefined {
  if (tokenizerModel === "llama") {
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(entry);
    return byte ? Uint8Array.of(parseInt(byte[1]!, 16)) : undefined;
  }
  if (tokenizerModel === "gpt2") {
    const decoder = byteLevelDecoder();
    const bytes: number[] = [];
    for (const char of entry) {
      const byte = decoder.get(char);
      if (byte === undefined) return undefined;
      bytes.push(byte);
    }
    return Uint8Array.from(bytes);
  }
  return undefined;
}

let byteLevel: Map<string, number> | undefined;

/** GPT-2's byte-level BPE alphabet: each byte written as a printable character (printable bytes as themselves, the rest from U+0100 on). */
function byteLevelDecoder(): Map<string, number> {
  if (byteLevel !== undefined) return byteLevel;
  byteLevel = new Map();
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (printable(b)) byteLevel.set(String.fromCharCode(b), b);
    else byteLevel.set(String.fromCharCode(256 + next++), b);
  }
  return byteLevel;
}

/** The bytes as text, without an incomplete character at the end (llama-server's validate_utf8). */
export function validUtf8Prefix(bytes: Uint8Array): string {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let end = bytes.length; end >= Math.max(0, bytes.length - 3); end--) {
    try {
      return decoder.decode(bytes.subarray(0, end));
    } catch {
      // An incomplete character: try without its last byte.
    }
  }
  return new TextDecoder().decode(bytes);
}
