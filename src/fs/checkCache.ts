import crypto from "node:crypto";
import fs from "node:fs";
import { writeFileAtomic } from "./atomicWrite.js";

/**
 * lmrun remembers the outcome of slow checks in small JSON files under LMRUN_HOME (the chat wrapper
 * a template resolves to, a GPU backend's test run, node-llama-cpp's binary check). Each is read whole,
 * falls back to empty when missing or damaged (the check then simply runs again), and is written
 * atomically.
 */

/** The file's content when `isValid` accepts it; undefined when it is missing, not JSON, or not valid. */
export function readCheckCache<T>(file: string, isValid: (value: Partial<T>) => boolean): T | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<T> | null;
    if (parsed !== null && typeof parsed === "object" && isValid(parsed)) return parsed as T;
  } catch {
    // missing or unreadable
  }
  return undefined;
}

export async function writeCheckCache(file: string, value: unknown, options: { mode?: number } = {}): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, options);
}

/** What a remembered outcome holds for: the SHA-256 of the parts, as hex (`length` characters). */
export function checkKey(parts: readonly unknown[], length = 64): string {
  return crypto.createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, length);
}
