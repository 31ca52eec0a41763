import fs from "node:fs/promises";
import type { Writable } from "node:stream";
import { LmrunError, UsageError } from "../errors.js";
import { writeFileAtomic } from "../fs/atomicWrite.js";
import { idKey } from "./batchFile.js";

/**
 * Where `lmrun batch` writes its answers: stdout, or `-o FILE`. A file gets each answer as one
 * complete line appended and flushed to disk before the next, so a batch killed at any moment
 * keeps every answer it finished; `--resume` reads them back and skips their ids.
 */

export interface AnswerRecord {
  id: string | number;
}

export interface AnswerSink {
  /** Ids answered by an earlier run (empty unless resuming). */
  readonly answered: ReadonlySet<string>;
  write(record: AnswerRecord): Promise<void>;
  close(): Promise<void>;
}

export function stdoutSink(stdout: Writable): AnswerSink {
  return {
    answered: new Set(),
    write: (record) =>
      new Promise((resolve) => {
        // Resolve when handed to the OS; an EPIPE is the entry point's to handle (it aborts the batch).
        stdout.write(JSON.stringify(record) + "\n", () => resolve());
      }),
    close: async () => {},
  };
}

/**
 * Opens FILE for appending. Without resume an existing non-empty file is refused (its answers
 * would be mixed with new ones). With resume, lines that are answers are kept and their ids skipped;
 * failed answers and a line cut short by a kill are dropped (rewritten atomically) so they run again.
 */
export async function fileSink(file: string, resume: boolean): Promise<AnswerSink> {
  let existing = "";
  try {
    existing = await fs.readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EISDIR") throw new UsageError(`${file} is a directory`);
    if (code !== "ENOENT") throw new LmrunError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (existing !== "" && !resume) {
    throw new UsageError(`${file} already holds answers`, "Pass --resume to continue that batch, or choose another file");
  }
  const answered = new Set<string>();
  if (existing !== "") {
    const kept: string[] = [];
    for (const line of existing.split("\n")) {
      const record = answerOf(line);
      if (record === undefined) continue;
      answered.add(idKey(record.id));
      kept.push(line);
    }
    const cleaned = kept.map((l) => l + "\n").join("");
    if (cleaned !== existing) await writeFileAtomic(file, cleaned, { mode: 0o644 });
  }
  const handle = await fs.open(file, "a", 0o644);
  let chain: Promise<void> = Promise.resolve();
  return {
    answered,
    write: (record) => {
      // One write of one whole line, then a flush: a kill between two answers loses neither.
      chain = chain.then(async () => {
        await handle.write(JSON.stringify(record) + "\n");
        await handle.datasync();
      });
      return chain;
    },
    close: async () => {
      await chain.catch(() => {});
      await handle.close();
    },
  };
}

/** A complete answer line (one with text, not an error), or undefined. */
function answerOf(line: string): AnswerRecord | undefined {
  if (line.trim() === "") return undefined;
  try {
    const value = JSON.parse(line) as Record<string, unknown> | null;
    if (typeof value !== "object" || value === null) return undefined;
    if ((typeof value.id !== "string" && typeof value.id !== "number") || typeof value.text !== "string" || value.error !== undefined) return undefined;
    return { id: value.id };
  } catch {
    return undefined;
  }
}
