import type { Readable } from "node:stream";
import { UsageError } from "../errors.js";
import { decodeUtf8, readInputBytes } from "../io/inputFile.js";
import { readPipedStdinBytes } from "../io/tty.js";
import { MIN_CONTEXT } from "../config/rules.js";

/**
 * The evaluation text: read whole, checked to be UTF-8, with one trailing newline removed
 * (llama.cpp's -f does exactly that before tokenising).
 */
export function decodeCorpus(bytes: Uint8Array, source: string): string {
  if (bytes.length === 0) throw new UsageError(`${source} is empty`, "Give a text of at least 2 x ctx tokens, e.g. wiki.test.raw");
  let text = decodeUtf8(bytes, source, "Convert it first, e.g. iconv -f latin1 -t utf-8");
  if (text.endsWith("\n")) text = text.slice(0, -1);
  if (text.trim() === "") throw new UsageError(`${source} holds only whitespace`, "Give a text of at least 2 x ctx tokens");
  return text;
}

/** The text from -f, or else from piped stdin (a terminal on stdin is a usage error). */
export async function readCorpus(file: string | undefined, stdin: Readable & { isTTY?: boolean }): Promise<string> {
  if (file !== undefined) return decodeCorpus(await readInputBytes(file, { what: "text file", flag: "-f" }), file);
  const piped = await readPipedStdinBytes(stdin);
  if (piped === undefined) throw new UsageError("no text to score", "Give a file with -f (e.g. wiki.test.raw) or pipe the text on stdin");
  return decodeCorpus(piped, "the text on stdin");
}

export interface ChunkPlan {
  ctx: number;
  chunks: number;
  /** First scored position in a chunk (llama-perplexity's n_ctx/2). */
  first: number;
  /** Tokens scored per chunk: positions first+1 .. ctx-1. */
  scoredPerChunk: number;
}

/** llama-perplexity's layout: floor(tokens / ctx) chunks (or fewer with --chunks), the second half of each scored. */
export function planChunks(tokenCount: number, ctx: number, maxChunks?: number): ChunkPlan {
  if (tokenCount < 2 * ctx) {
    throw new UsageError(
      `the text is too short: it tokenises to ${tokenCount} tokens, and a context of ${ctx} needs at least ${2 * ctx}`,
      // Only suggest a smaller -c that -c accepts: "at most 4" was offered when the least is 16.
      Math.floor(tokenCount / 2) >= MIN_CONTEXT
        ? `Give a longer text or a smaller -c (at most ${Math.floor(tokenCount / 2)})`
        : `Give a longer text: at least ${2 * MIN_CONTEXT} tokens, for the smallest -c (${MIN_CONTEXT})`,
    );
  }
  const available = Math.floor(tokenCount / ctx);
  const chunks = maxChunks !== undefined ? Math.min(maxChunks, available) : available;
  const first = Math.floor(ctx / 2);
  return { ctx, chunks, first, scoredPerChunk: ctx - 1 - first };
}
