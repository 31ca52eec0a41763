import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";

/**
 * Writes a file so that readers see the old or the new content, never half of it:
 * write a temp file beside it, flush it to disk, rename it over the target, then flush the
 * directory so the rename itself survives a crash. Used for sessions, history, the model
 * manifest and resume metadata.
 */
export async function writeFileAtomic(file: string, content: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`);
  const handle = await fs.open(temp, "w", options.mode ?? 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

/** Flushes a directory's entries (a rename or a new file) to disk. */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  }
}
