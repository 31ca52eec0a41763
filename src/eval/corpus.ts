import fs from "node:fs/promises";
import { LmrunError, UsageError } from "../errors.js";
import { MIN_CONTEXT } from "../config/rules.js";

/**
 * The evaluation text: read whole, checked to be UTF-8, with one trailing newline removed
 * (llama.cpp's -f does exactly that before tokenising).
 */
export function decodeCorpus(bytes: Uint8Array, source: string): string {
  if (bytes.length === 0) throw new UsageError(`${source} is empty`, "Give a text of at least 2 x ctx tokens, e.g. wiki.test.raw");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    throw new UsageError(
      `${source} is not valid UTF-8 (first bad byte at offset ${offset})`,
      "Convert it first, e.g. iconv -f latin1 -t utf-8",
    );
  }
  if (text.endsWith("\n")) text = text.slice(0, -1);
  if (text.trim() === "") throw new UsageError(`${source} holds only whitespace`, "Give a text of at least 2 x ctx tokens");
  return text;
}

function firstInvalidUtf8(bytes: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let lo = 0;
  let hi = bytes.length;
  // Binary search on the longest valid prefix (a prefix may end mid-character, so allow 3 bytes of slack).
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    try {
      decoder.decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  // The longest valid prefix may end inside a sequence whose continuation is the bad byte: point at its start.
  for (let back = 1; back <= 3 && lo - back >= 0; back++) {
    const byte = bytes[lo - back]!;
    if (byte < 0x80) break;
    if (byte >= 0xc0) {
      const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      if (back < length) return lo - back;
      break;
    }
  }
  return lo;
}

export async function readCorpusFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`text file not found: ${file}`, "Check the path given to -f");
    if (code === "EISDIR") throw new UsageError(`${file} is a directory`, "Give a text file to -f");
    throw new LmrunError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return decodeCorpus(bytes, file);
}

/** The text from -f, or else from piped stdin (a terminal on stdin is a usage error). */
export async function readCorpus(file: string | undefined, stdin: NodeJS.ReadableStream & { isTTY?: boolean }): Promise<string> {
  if (file !== undefined) return readCorpusFile(file);
  if (stdin.isTTY) throw new UsageError("no text to score", "Give a file with -f (e.g. wiki.test.raw) or pipe the text on stdin");
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return decodeCorpus(Buffer.concat(chunks), "the text on stdin");
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
