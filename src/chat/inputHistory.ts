import fs from "node:fs/promises";
import { writeFileAtomic } from "../fs/atomicWrite.js";

/** Prompts typed in chat, kept across sessions (one JSON string per line, so multi-line entries survive). */
export const HISTORY_LIMIT = 500;

export function parseHistory(raw: string): string[] {
  const entries: string[] = [];
  for (const line of raw.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === "string" && value !== "") entries.push(value);
    } catch {
      // A line from another tool or a torn write: skip it.
    }
  }
  return entries.slice(-HISTORY_LIMIT);
}

/** Appends an entry, dropping an identical previous one so that up-arrow does not repeat itself. */
export function pushHistory(entries: string[], entry: string): string[] {
  if (entry.trim() === "") return entries;
  const next = entries.filter((e) => e !== entry);
  next.push(entry);
  return next.slice(-HISTORY_LIMIT);
}

export class InputHistoryFile {
  constructor(readonly file: string) {}

  async load(): Promise<string[]> {
    try {
      return parseHistory(await fs.readFile(this.file, "utf8"));
    } catch {
      return [];
    }
  }

  async save(entries: string[]): Promise<void> {
    await writeFileAtomic(this.file, entries.map((e) => JSON.stringify(e)).join("\n") + "\n");
  }
}
