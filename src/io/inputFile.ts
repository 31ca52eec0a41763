import fs from "node:fs/promises";
import type { Readable } from "node:stream";
import { LmrunError, UsageError } from "../errors.js";
import { readPipedStdinBytes } from "./tty.js";

/** How a command names a file it was told to read, for the one-line errors below. */
export interface InputFile {
  /** What the file holds: "task file", "batch file", "system prompt file" ... */
  what: string;
  /** The flag that named it ("-f"), for the hints. */
  flag?: string | undefined;
  /** Given, "-" reads this stdin (a pipe; a terminal there is a usage error). */
  stdin?: (Readable & { isTTY?: boolean }) | undefined;
  /** Given, an empty file is a usage error with this hint. */
  emptyHint?: string | undefined;
}

/**
 * A file a command was told to read (-f, --system-file, a batch file ...), whole. A missing file,
 * a directory and any other failure are one line that names the file and what it was for.
 */
export async function readInputBytes(file: string, input: InputFile): Promise<Buffer> {
  const bytes = file === "-" && input.stdin !== undefined ? await readStdin(input.stdin, input.what) : await readFileExplained(file, input);
  if (bytes.length === 0 && input.emptyHint !== undefined) throw new UsageError(`${file === "-" ? "stdin" : file} is empty`, input.emptyHint);
  return bytes;
}

/** readInputBytes as text: UTF-8, with invalid bytes replaced (as fs.readFile(file, "utf8")). */
export async function readInputText(file: string, input: InputFile): Promise<string> {
  return (await readInputBytes(file, input)).toString("utf8");
}

async function readFileExplained(file: string, input: InputFile): Promise<Buffer> {
  const to = input.flag !== undefined ? ` given to ${input.flag}` : "";
  try {
    return await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`${input.what} not found: ${file}`, `Check the path${to}`);
    if (code === "EISDIR") throw new UsageError(`${file} is a directory`, `Give a ${input.what}${input.flag !== undefined ? ` to ${input.flag}` : ""}`);
    throw new LmrunError(`cannot read ${input.what} ${file}: ${(error as Error).message}`);
  }
}

async function readStdin(stdin: Readable & { isTTY?: boolean }, what: string): Promise<Buffer> {
  const bytes = await readPipedStdinBytes(stdin);
  if (bytes === undefined) throw new UsageError(`- reads the ${what} from stdin, which is a terminal`, "Pipe the file in, or give its path");
  return bytes;
}

/**
 * Text that must be UTF-8 (task files, JSONL, a corpus): decoded strictly, and a usage error that
 * names the first bad byte otherwise.
 */
export function decodeUtf8(bytes: Uint8Array, source: string, hint: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${source} is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(bytes)})`, hint);
  }
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
