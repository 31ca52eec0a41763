import fs from "node:fs/promises";
import { LmrunError } from "../errors.js";
import { sha256FromEtag } from "./hash.js";
import { createHasher, type Hasher } from "./hasher.js";
import { header, rawRequest, type RawResponse } from "./http.js";
import { abortableSleep } from "./lock.js";
import { writeFileAtomic } from "../fs/atomicWrite.js";

/**
 * Downloads one URL into a `.partial` file, continuing from what an earlier (killed or interrupted)
 * attempt left there with a Range request, and hashing as it goes. The sidecar `.partial.json` records
 * which URL and ETag the bytes came from, so a partial of another file is never continued.
 *
 * node-llama-cpp's downloader (ipull) refetches the whole file in a new process, so this is ours.
 */
export interface TransferOptions {
  url: string;
  partialPath: string;
  metaPath: string;
  headersFor: (url: string) => Record<string, string>;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Size we expect (catalogue or API), used when the server sends none. */
  expectedSize?: number;
  /** No byte for this long: the connection is dropped and resumed. */
  stallMs?: number;
  /** Attempts per transfer for dropped connections, stalls and 5xx. */
  maxAttempts?: number;
  /** Longest wait honoured for a 429's Retry-After. */
  maxRateLimitWaitMs?: number;
  onEvent?: (event: TransferEvent) => void;
}

export type TransferEvent =
  | { type: "start"; totalBytes: number | undefined; resumeFrom: number }
  | { type: "progress"; downloadedBytes: number; totalBytes: number | undefined }
  | { type: "retry"; attempt: number; reason: string; delayMs: number }
  | { type: "restart"; reason: string };

export interface TransferResult {
  size: number;
  sha256: string;
  /** The sha256 the server vouched for (Hugging Face X-Linked-Etag / ETag of an LFS file). */
  serverSha256?: string;
  resumedFrom: number;
  /** Bytes received over the network in this call. */
  transferredBytes: number;
}

interface PartialMeta {
  url: string;
  etag?: string;
  size?: number;
}

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

const RETRY_DELAYS_MS = [250, 1000, 2000, 4000, 8000];

export async function transferToPartial(options: TransferOptions): Promise<TransferResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const stallMs = options.stallMs ?? 30_000;
  const resumable = await resumableOffset(options);
  let offset = resumable.offset;
  const resumedFrom = offset;
  let hash = createHasher(options.expectedSize ?? resumable.size, options.partialPath);
  if (offset > 0) await hash.catchUp(offset, options.signal);
  let transferred = 0;
  let failures = 0;
  let rateLimited = 0;
  let started = false;
  let serverSha256: string | undefined;
  let total: number | undefined = options.expectedSize;

  const reset = async (reason: string) => {
    options.onEvent?.({ type: "restart", reason });
    hash.dispose();
    hash = createHasher(total, options.partialPath);
    offset = 0;
    await fs.writeFile(options.partialPath, "");
  };

  try {
    return await transferLoop();
  } catch (error) {
    hash.dispose();
    throw error;
  }

  async function transferLoop(): Promise<TransferResult> {
  for (;;) {
    options.signal?.throwIfAborted();
    let response: Awaited<ReturnType<typeof requestFollowingRedirects>>;
    try {
      response = await requestFollowingRedirects(options, offset);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      failures = await failOrRetry(options, failures, maxAttempts, `cannot reach ${new URL(options.url).host}: ${(error as Error).message}`);
      continue;
    }
    const { status } = response;
    serverSha256 ??= response.linkedSha256;
    if (status === 429) {
      response.body.resume();
      rateLimited++;
      const waitMs = Math.min(retryAfterMs(response), options.maxRateLimitWaitMs ?? 60_000);
      if (rateLimited > 4) {
        throw new HttpStatusError(429, options.url, `the server is rate limiting downloads (HTTP 429) and still refused after ${rateLimited} waits`, "Wait a few minutes and pull again; set HF_TOKEN for higher limits");
      }
      options.onEvent?.({ type: "retry", attempt: rateLimited, reason: "rate limited (HTTP 429)", delayMs: waitMs });
      await abortableSleep(waitMs, options.signal);
      continue;
    }
    if (status === 401 || status === 403) {
      response.body.resume();
      throw new HttpStatusError(status, options.url, `the server refused the download (HTTP ${status}): the model is gated or private`, "Set HF_TOKEN to a Hugging Face token that has access (and accept the licence on the model page)");
    }
    if (status === 404) {
      response.body.resume();
      throw new HttpStatusError(404, options.url, `not found (HTTP 404): ${options.url}`);
    }
    if (status === 416 && offset > 0) {
      response.body.resume();
      const whole = Number(/\/(\d+)$/.exec(header(response.headers, "content-range") ?? "")?.[1]);
      if (Number.isFinite(whole) && whole === offset) {
        total = whole;
        break; // the partial already holds the whole file
      }
      await reset("the partial download does not fit the remote file");
      continue;
    }
    if (status >= 500 || (status !== 200 && status !== 206)) {
      response.body.resume();
      failures = await failOrRetry(options, failures, maxAttempts, `HTTP ${status} from ${new URL(response.url).host}`);
      continue;
    }
    if (offset > 0 && resumable.etag !== undefined && response.etag !== undefined && resumable.etag !== response.etag) {
      response.body.destroy();
      resumable.etag = undefined;
      await reset("the remote file changed since the partial download");
      continue;
    }
    let start = 0;
    if (status === 206) {
      const range = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(header(response.headers, "content-range") ?? "");
      start = range ? Number(range[1]) : Number.NaN;
      if (range && range[3] !== "*") total = Number(range[3]);
      if (start !== offset) {
        response.body.destroy();
        await reset(`the server answered a different range (asked from ${offset}, got ${start})`);
        continue;
      }
    } else {
      const length = Number(header(response.headers, "content-length"));
      if (Number.isFinite(length) && header(response.headers, "content-length") !== undefined) total = length;
      if (offset > 0) {
        // The server ignored Range: start over, never append the whole file to the partial.
        options.onEvent?.({ type: "restart", reason: "the server does not support resuming (it ignored Range)" });
        hash.dispose();
        hash = createHasher(total, options.partialPath);
        offset = 0;
      }
    }
    total ??= response.linkedSize;
    if (offset === 0) {
      // Now that the size is known, pick the hasher that suits it (nothing was hashed yet).
      hash.dispose();
      hash = createHasher(total, options.partialPath);
    }
    if (!started || status === 200) {
      started = true;
      options.onEvent?.({ type: "start", totalBytes: total, resumeFrom: offset });
    }
    await writeMeta(options.metaPath, { url: options.url, ...(response.etag ? { etag: response.etag } : {}), ...(total !== undefined ? { size: total } : {}) });
    const progress = { offset, streamed: 0 };
    try {
      await streamBody(response.body, options, progress, hash, stallMs, total);
      offset = progress.offset;
      transferred += progress.streamed;
    } catch (error) {
      transferred += progress.streamed;
      offset = progress.offset;
      if (options.signal?.aborted) throw error;
      if (error instanceof PartialWriteError) {
        if (error.code === "ENOSPC" || error.code === "EDQUOT") {
          throw new LmrunError(`no space left on the disk holding ${options.partialPath} (${formatMaybe(total)} needed in all)`, {
            hint: "Free some space (or set modelsDir with `lmrun config set modelsDir DIR`) and pull again: it resumes from what was written",
          });
        }
        throw new LmrunError(`cannot write ${options.partialPath}: ${error.message}`, { hint: "Check the disk and the models directory's permissions" });
      }
      failures = await failOrRetry(options, failures, maxAttempts, (error as Error).message);
      continue;
    }
    if (total === undefined || offset === total) break;
    if (offset > total) {
      await reset(`the server sent more bytes than the ${total} it announced`);
      failures = await failOrRetry(options, failures, maxAttempts, "the server sent too many bytes");
      continue;
    }
    // Connection ended early without an error: resume from here.
    failures = await failOrRetry(options, failures, maxAttempts, `the connection closed after ${offset} of ${total} bytes`);
  }
  return { size: offset, sha256: await hash.digest(), ...(serverSha256 ? { serverSha256 } : {}), resumedFrom, transferredBytes: transferred };
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

async function streamBody(
  body: RawResponse["body"],
  options: TransferOptions,
  /** Where the partial ends and what this call streamed; kept current so that a failure resumes from there. */
  progress: { offset: number; streamed: number },
  hash: Hasher,
  stallMs: number,
  total: number | undefined,
): Promise<void> {
  const handle = await fs.open(options.partialPath, progress.offset === 0 ? "w" : "r+");
  // Stall detection with one interval rather than a timer per chunk.
  let lastDataAt = performance.now();
  let stalled = false;
  const watchdog = setInterval(() => {
    if (performance.now() - lastDataAt > stallMs) {
      stalled = true;
      body.destroy(new Error("stalled"));
    }
  }, Math.max(10, Math.min(1000, stallMs / 4)));
  const onAbort = () => body.destroy(options.signal?.reason instanceof Error ? options.signal.reason : new Error("aborted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
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
      // Only written bytes are hashed, in file order: the hash always covers exactly the partial.
      hash.update(buffers, position + length);
      queuedBytes -= length;
      unsyncedBytes += length;
      if (unsyncedBytes >= 64 << 20 && !syncing) {
        syncing = true;
        unsyncedBytes = 0;
        backgroundSync = handle.datasync().catch(() => {}).finally(() => (syncing = false));
      }
      progress.offset += length;
      progress.streamed += length;
      options.onEvent?.({ type: "progress", downloadedBytes: progress.offset, totalBytes: total });
    });
  };
  try {
    // 'data' events rather than `for await`: ~10% less CPU per byte on a fast link, and on two cores
    // the hashing worker needs every cycle it can get.
    await new Promise<void>((resolve, reject) => {
      let paused = false;
      body.on("data", (chunk: Buffer) => {
        lastDataAt = performance.now();
        pending.push(chunk);
        pendingBytes += chunk.length;
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
    if (!body.complete) throw new Error(`the connection closed after ${progress.offset} bytes`);
  } catch (error) {
    // Keep what arrived: write (and hash) it before resuming.
    flush();
    await queue;
    if (writeError) throw writeError;
    throw stalled ? new Error(`no data for ${(stallMs / 1000).toFixed(1)}s (stalled connection)`) : error;
  } finally {
    clearInterval(watchdog);
    options.signal?.removeEventListener("abort", onAbort);
    body.destroy();
    await backgroundSync;
    await handle.sync().catch(() => {});
    await handle.close();
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

async function failOrRetry(options: TransferOptions, failures: number, maxAttempts: number, reason: string): Promise<number> {
  const attempt = failures + 1;
  if (attempt >= maxAttempts) {
    throw new LmrunError(`download failed after ${attempt} attempts: ${reason}`, {
      hint: "Check the connection and pull again: it resumes from what was downloaded",
    });
  }
  const delayMs = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
  options.onEvent?.({ type: "retry", attempt, reason, delayMs });
  await abortableSleep(delayMs, options.signal);
  return attempt;
}

/** How much of an earlier partial can be kept: only bytes of this same URL. */
async function resumableOffset(options: TransferOptions): Promise<{ offset: number; etag?: string | undefined; size?: number | undefined }> {
  const stat = await fs.stat(options.partialPath).catch(() => undefined);
  if (!stat?.isFile() || stat.size === 0) return { offset: 0 };
  const meta = await readMeta(options.metaPath);
  if (meta?.url !== options.url || (meta.size !== undefined && stat.size > meta.size)) {
    await fs.writeFile(options.partialPath, "");
    return { offset: 0 };
  }
  return { offset: stat.size, etag: meta.etag, size: meta.size };
}

async function readMeta(file: string): Promise<PartialMeta | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, "utf8")) as PartialMeta;
  } catch {
    return undefined;
  }
}

async function writeMeta(file: string, meta: PartialMeta): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(meta), { mode: 0o644 });
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
 */
async function requestFollowingRedirects(options: TransferOptions, offset: number) {
  let url = options.url;
  let linkedSha256: string | undefined;
  let linkedSize: number | undefined;
  for (let hop = 0; hop < 8; hop++) {
    const response = await rawRequest(url, {
      headers: { ...options.headersFor(url), ...(offset > 0 ? { range: `bytes=${offset}-` } : {}), "accept-encoding": "identity" },
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

function formatMaybe(bytes: number | undefined): string {
  return bytes === undefined ? "an unknown amount" : `${(bytes / 1e6).toFixed(1)} MB`;
}
