import type fs from "node:fs/promises";
import { LmrunError } from "../errors.js";
import { sha256FromEtag } from "./hash.js";
import { header, rawRequest, type RawResponse } from "./http.js";
import { abortableSleep } from "./lock.js";
import type { TransferOptions } from "./transfer.js";

/**
 * What a single-connection transfer and a segment of a parallel one share: requests (redirects
 * followed by hand), the answers no retry fixes, retries with back-off, and streaming a body to
 * its place in the partial with stall detection.
 */

export class HttpStatusError extends LmrunError {
  constructor(
    readonly status: number,
    readonly url: string,
    message: string,
    hint?: string,
  ) {
    super(message, hint !== undefined ? { hint } : {});
  }
}

/** A failure writing the partial (disk full, I/O error): never retried as if it were the network's. */
export class PartialWriteError extends Error {
  constructor(readonly errno: NodeJS.ErrnoException) {
    super(errno.message);
  }
  get code(): string | undefined {
    return this.errno.code;
  }
}

export type DownloadResponse = Awaited<ReturnType<typeof requestFollowingRedirects>>;

const RETRY_DELAYS_MS = [250, 1000, 2000, 4000, 8000];

/** Throws for the answers that no retry fixes: gated/private (401/403) and missing (404). */
export function throwIfRefused(response: DownloadResponse, url: string): void {
  const { status } = response;
  if (status === 401 || status === 403) {
    response.body.resume();
    throw new HttpStatusError(status, url, `the server refused the download (HTTP ${status}): the model is gated or private`, "Set HF_TOKEN to a Hugging Face token that has access (and accept the licence on the model page)");
  }
  if (status === 404) {
    response.body.resume();
    throw new HttpStatusError(404, url, `not found (HTTP 404): ${url}`);
  }
}

/** Waits out a 429 (Retry-After, capped) and returns how many waits there were, or gives up after 4. */
export async function waitOutRateLimit(options: TransferOptions, response: DownloadResponse, waitsSoFar: number): Promise<number> {
  response.body.resume();
  const waits = waitsSoFar + 1;
  const waitMs = Math.min(retryAfterMs(response), options.maxRateLimitWaitMs ?? 60_000);
  if (waits > 4) {
    throw new HttpStatusError(429, options.url, `the server is rate limiting downloads (HTTP 429) and still refused after ${waits} waits`, "Wait a few minutes and pull again; set HF_TOKEN for higher limits");
  }
  options.onEvent?.({ type: "retry", attempt: waits, reason: "rate limited (HTTP 429)", delayMs: waitMs });
  await abortableSleep(waitMs, options.signal);
  return waits;
}

/** `keptBytes`: what the partial holds (the hint promises a resume only when there is something to resume). */
export async function failOrRetry(options: TransferOptions, failures: number, maxAttempts: number, reason: string, keptBytes?: number): Promise<number> {
  const attempt = failures + 1;
  if (attempt >= maxAttempts) {
    throw new LmrunError(`download failed after ${attempt} attempts: ${reason}`, {
      hint: keptBytes === 0 ? "Check the connection and pull again" : "Check the connection and pull again: it resumes from what was downloaded",
    });
  }
  const delayMs = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
  options.onEvent?.({ type: "retry", attempt, reason, delayMs });
  await abortableSleep(delayMs, options.signal);
  return attempt;
}

/** No connection could be made at all (no DNS, nothing listening, no route): offline, or a wrong host. */
export function isUnreachable(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ECONNREFUSED" || code === "ENETUNREACH" || code === "EHOSTUNREACH";
}

/** The user-facing error for a failed write to the partial (disk full gets its own advice). */
export function writeFailure(error: PartialWriteError, partialPath: string, total: number | undefined): LmrunError {
  if (error.code === "ENOSPC" || error.code === "EDQUOT") {
    return new LmrunError(`no space left on the disk holding ${partialPath} (${formatMaybe(total)} needed in all)`, {
      hint: "Free some space (or set modelsDir with `lmrun config set modelsDir DIR`) and pull again: it resumes from what was written",
    });
  }
  return new LmrunError(`cannot write ${partialPath}: ${error.message}`, { hint: "Check the disk and the models directory's permissions" });
}

function formatMaybe(bytes: number | undefined): string {
  return bytes === undefined ? "an unknown amount" : `${(bytes / 1e6).toFixed(1)} MB`;
}

function retryAfterMs(response: { headers: RawResponse["headers"] }): number {
  const retryAfter = header(response.headers, "retry-after");
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(retryAfter);
    if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  }
  // Hugging Face: `ratelimit: "api";r=0;t=55`
  const t = /(?:^|;)\s*t=(\d+)/.exec(header(response.headers, "ratelimit") ?? "")?.[1];
  return t !== undefined ? Number(t) * 1000 : 1000;
}

/**
 * Follows redirects by hand: Hugging Face answers /resolve/ with a redirect that carries the LFS
 * sha256 (X-Linked-Etag) and size (X-Linked-Size), which the CDN's final answer does not.
 * `range` is the Range header's value (`bytes=N-` to resume, `bytes=A-B` for a segment).
 */
export async function requestFollowingRedirects(options: TransferOptions, range: string | undefined) {
  let url = options.url;
  let linkedSha256: string | undefined;
  let linkedSize: number | undefined;
  for (let hop = 0; hop < 8; hop++) {
    const response = await rawRequest(url, {
      headers: { ...options.headersFor(url), ...(range !== undefined ? { range } : {}), "accept-encoding": "identity" },
      ...(options.signal ? { signal: options.signal } : {}),
      env: options.env,
    });
    linkedSha256 ??= sha256FromEtag(header(response.headers, "x-linked-etag"));
    const linked = Number(header(response.headers, "x-linked-size"));
    if (linkedSize === undefined && Number.isFinite(linked) && linked > 0) linkedSize = linked;
    const location = header(response.headers, "location");
    if (response.status >= 300 && response.status < 400 && location) {
      response.body.resume();
      url = new URL(location, url).href;
      continue;
    }
    const etag = header(response.headers, "etag");
    // An LFS file's own ETag is its sha256 on Hugging Face; on other servers it is just a version tag.
    linkedSha256 ??= url.startsWith(options.url.split("/resolve/")[0] ?? "\0") ? sha256FromEtag(etag) : undefined;
    return { ...response, url, linkedSha256, linkedSize, etag };
  }
  throw new Error(`too many redirects from ${options.url}`);
}

/** Where a body's bytes go: an open partial, and who hears about each batch once it is on disk. */
export interface BodySink {
  handle: fs.FileHandle;
  /** `length` bytes (`buffers`) are now on disk at `position`; called in the order they were written. */
  written(buffers: Buffer[], position: number, length: number): void;
}

/**
 * Streams a response body into the partial from `progress.offset` on, stopping at `limit` (a
 * segment's end: a 200 answer goes on past it). Throws on a dropped or stalled connection, after
 * writing what arrived; `progress` is kept current so that a retry continues from there.
 */
export async function streamBody(
  body: RawResponse["body"],
  signal: AbortSignal | undefined,
  sink: BodySink,
  progress: { offset: number; streamed: number },
  stallMs: number,
  limit?: number,
): Promise<void> {
  const { handle } = sink;
  // Stall detection with one interval rather than a timer per chunk.
  let lastDataAt = performance.now();
  let stalled = false;
  const watchdog = setInterval(() => {
    if (performance.now() - lastDataAt > stallMs) {
      stalled = true;
      body.destroy(new Error("stalled"));
    }
  }, Math.max(10, Math.min(1000, stallMs / 4)));
  const onAbort = () => body.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  // Chunks are written in batches while the next ones are read, then hashed; at most `maxQueued`
  // bytes wait for the disk. A killed process keeps every batch that was written.
  const maxQueued = 16 << 20;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let writePosition = progress.offset;
  let queue: Promise<void> = Promise.resolve();
  let queuedBytes = 0;
  let writeError: PartialWriteError | undefined;
  let batchStartedAt = performance.now();
  let reachedLimit = false;
  // Flush to disk as we go (one datasync in flight, every 64 MB) so that the sync before the
  // rename into place has only the tail left: ~0.15 s less per 500 MB here.
  let backgroundSync: Promise<void> = Promise.resolve();
  let syncing = false;
  let unsyncedBytes = 0;
  const flush = () => {
    batchStartedAt = performance.now();
    if (pendingBytes === 0) return;
    const buffers = pending;
    const length = pendingBytes;
    const position = writePosition;
    pending = [];
    pendingBytes = 0;
    writePosition += length;
    queuedBytes += length;
    queue = queue.then(async () => {
      if (writeError) return;
      try {
        await writeAll(handle, buffers, length, position);
      } catch (error) {
        writeError = new PartialWriteError(error as NodeJS.ErrnoException);
        return;
      }
      queuedBytes -= length;
      unsyncedBytes += length;
      if (unsyncedBytes >= 64 << 20 && !syncing) {
        syncing = true;
        unsyncedBytes = 0;
        backgroundSync = handle.datasync().catch(() => {}).finally(() => (syncing = false));
      }
      progress.offset += length;
      progress.streamed += length;
      // Only written bytes are reported (and hashed), in file order.
      sink.written(buffers, position, length);
    });
  };
  try {
    // 'data' events rather than `for await`: ~10% less CPU per byte on a fast link, and on two cores
    // the hashing worker needs every cycle it can get.
    await new Promise<void>((resolve, reject) => {
      let paused = false;
      body.on("data", (raw: Buffer) => {
        if (reachedLimit) return;
        lastDataAt = performance.now();
        let chunk = raw;
        if (limit !== undefined && writePosition + pendingBytes + chunk.length >= limit) {
          chunk = chunk.subarray(0, limit - writePosition - pendingBytes);
          reachedLimit = true;
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (reachedLimit) return resolve();
        if (pendingBytes >= 1 << 20 || lastDataAt - batchStartedAt > 100) flush();
        if (writeError) body.destroy(writeError);
        else if (queuedBytes > maxQueued && !paused) {
          paused = true;
          body.pause();
          void queue.then(() => {
            paused = false;
            body.resume();
          });
        }
      });
      body.once("end", resolve);
      body.once("error", reject);
      // A connection cut without an error: what arrived is kept, `complete` below tells.
      body.once("close", resolve);
    });
    flush();
    await queue;
    if (writeError) throw writeError;
    if (!body.complete && !reachedLimit) throw new Error(`the connection closed after ${progress.offset} bytes`);
  } catch (error) {
    // Keep what arrived: write (and hash) it before resuming.
    flush();
    await queue;
    if (writeError) throw writeError;
    throw stalled ? new Error(`no data for ${(stallMs / 1000).toFixed(1)}s (stalled connection)`) : error;
  } finally {
    clearInterval(watchdog);
    signal?.removeEventListener("abort", onAbort);
    body.destroy();
    await backgroundSync;
  }
}

async function writeAll(handle: fs.FileHandle, buffers: Buffer[], length: number, position: number): Promise<void> {
  const { bytesWritten } = await handle.writev(buffers, position);
  if (bytesWritten === length) return;
  const rest = Buffer.concat(buffers, length).subarray(bytesWritten);
  let written = 0;
  while (written < rest.length) {
    const result = await handle.write(rest, written, rest.length - written, position + bytesWritten + written);
    written += result.bytesWritten;
  }
}
