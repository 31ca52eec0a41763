import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Streams a file (or its first `length` bytes) through sha256. Reports bytes hashed so far. */
export async function sha256File(
  file: string,
  options: { signal?: AbortSignal; onProgress?: (bytes: number) => void; length?: number; hash?: Hash } = {},
): Promise<{ hex: string; bytes: number }> {
  const hash = options.hash ?? createHash("sha256");
  const bytes = await feedFile(hash, file, options);
  return { hex: hash.digest("hex"), bytes };
}

/** Feeds a file's bytes into an existing hash (used to continue a resumed download's hash). */
export async function feedFile(
  hash: Hash,
  file: string,
  options: { signal?: AbortSignal; onProgress?: (bytes: number) => void; length?: number } = {},
): Promise<number> {
  if (options.length === 0) return 0;
  const stream = fs.createReadStream(file, {
    highWaterMark: 1 << 20,
    ...(options.length !== undefined ? { start: 0, end: options.length - 1 } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
    options.onProgress?.(bytes);
  }
  return bytes;
}

/** Hugging Face sends the LFS sha256 as the ETag (quoted, maybe weak); a 40-hex git sha is not a content hash. */
export function sha256FromEtag(etag: string | null | undefined): string | undefined {
  if (!etag) return undefined;
  const value = etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "").toLowerCase();
  return SHA256_HEX.test(value) ? value : undefined;
}
