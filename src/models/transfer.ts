import fs from "node:fs/promises";
import { LmrunError } from "../errors.js";
import { failOrRetry, HttpStatusError, isUnreachable, PartialWriteError, requestFollowingRedirects, streamBody, throwIfRefused, waitOutRateLimit, writeFailure, type DownloadResponse } from "./download.js";
import { createHasher, type Hasher } from "./hasher.js";
import { header } from "./http.js";
import { downloadSegments, type SegmentOutcome } from "./parallel.js";
import { bytesOnDisk, contiguousPrefix, parallelSettings, planSegmentsFrom, readMeta, SlowConnectionProbe, segmentsFit, writeMeta, type ParallelSettings, type Segment } from "./segments.js";

export { HttpStatusError, PartialWriteError };

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




export async function transferToPartial(options: TransferOptions): Promise<TransferResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const stallMs = options.stallMs ?? 30_000;
  const parallel = parallelSettings(options.env);
  const resumable = await resumableOffset(options);
  let offset = resumable.offset;
  const resumedFrom = resumable.segments ? bytesOnDisk(resumable.segments) : offset;
  let hash = createHasher(options.expectedSize ?? resumable.size, options.partialPath);
  if (offset > 0) await hash.catchUp(offset, options.signal);
  let transferred = 0;
  let failures = 0;
  let rateLimited = 0;
  let started = false;
  let serverSha256: string | undefined;
  let total: number | undefined = options.expectedSize;
  // One try at several connections per call: after a fallback or restart, one connection it is.
  let segmentsAllowed = true;
  /** The server answered a resume with the whole file. */
  let rangeIgnored = false;

  const reset = async (reason: string) => {
    options.onEvent?.({ type: "restart", reason });
    hash.dispose();
    hash = createHasher(total, options.partialPath);
    offset = 0;
    await fs.writeFile(options.partialPath, "");
  };

  /** Runs the segments of a plan; true when they completed the file, else the loop goes on from `offset`. */
  const runSegments = async (segments: Segment[], etag: string | undefined, firstResponse?: DownloadResponse): Promise<boolean> => {
    segmentsAllowed = false;
    const outcome: SegmentOutcome = await downloadSegments({ transfer: options, segments, total: total!, etag, hash, stallMs, maxAttempts, ...(firstResponse ? { firstResponse } : {}) });
    transferred += outcome.transferred;
    serverSha256 ??= outcome.serverSha256;
    if (outcome.kind === "done") {
      offset = total!;
      return true;
    }
    if (outcome.kind === "restart") {
      await reset(outcome.reason);
      return false;
    }
    offset = outcome.prefix;
    options.onEvent?.({ type: "restart", reason: `${outcome.reason}; going on over one connection from byte ${offset}` });
    return false;
  };

  try {
    if (resumable.segments) {
      // Another process planned segments: continue each from where it got to.
      total = resumable.size;
      started = true;
      options.onEvent?.({ type: "start", totalBytes: total, resumeFrom: resumedFrom });
      if (await runSegments(resumable.segments, resumable.etag)) return await finish();
    }
    return await transferLoop();
  } catch (error) {
    hash.dispose();
    throw error;
  }

  async function finish(): Promise<TransferResult> {
    return { size: offset, sha256: await hash.digest(), ...(serverSha256 ? { serverSha256 } : {}), resumedFrom, transferredBytes: transferred };
  }

  async function transferLoop(): Promise<TransferResult> {
  for (;;) {
    options.signal?.throwIfAborted();
    let response: DownloadResponse;
    try {
      response = await requestFollowingRedirects(options, offset > 0 ? `bytes=${offset}-` : undefined);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const reason = `cannot reach ${new URL(options.url).host}: ${(error as Error).message}`;
      // Offline or a wrong host before a byte came: retrying for seconds, silently in a pipe, helped no one.
      if (!started && transferred === 0 && isUnreachable(error)) {
        throw new LmrunError(reason, { hint: "Check the network connection (or HF_ENDPOINT and the URL), then pull again", cause: error });
      }
      failures = await failOrRetry(options, failures, maxAttempts, reason, rangeIgnored ? 0 : offset);
      continue;
    }
    const { status } = response;
    serverSha256 ??= response.linkedSha256;
    if (status === 429) {
      rateLimited = await waitOutRateLimit(options, response, rateLimited);
      continue;
    }
    throwIfRefused(response, options.url);
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
      failures = await failOrRetry(options, failures, maxAttempts, `HTTP ${status} from ${new URL(response.url).host}`, offset);
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
        rangeIgnored = true;
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
    // One connection first; if it turns out slow (a CDN's per-connection cap), the rest of the file
    // goes over several. A fast one (a local mirror) is left alone: extra connections would only
    // compete for the CPU that hashing and writing need.
    const probe = segmentsAllowed && wantsSegments(response, total, parallel) ? new SlowConnectionProbe(parallel, offset) : undefined;
    try {
      await streamToPartial(response.body, options, progress, hash, stallMs, total, probe);
      offset = progress.offset;
      transferred += progress.streamed;
    } catch (error) {
      transferred += progress.streamed;
      offset = progress.offset;
      if (probe?.switched && !options.signal?.aborted) {
        if (offset >= total!) break; // the whole file had arrived before the switch took effect
        options.onEvent?.({ type: "restart", reason: `${probe.switched}; continuing from byte ${offset} over ${parallel.connections} connections` });
        if (await runSegments(planSegmentsFrom(offset, total!, parallel.connections), response.etag)) break;
        continue;
      }
      if (options.signal?.aborted) throw error;
      if (error instanceof PartialWriteError) throw writeFailure(error, options.partialPath, total);
      // Node calls a connection the server cut "aborted": say what happened, and why retrying cannot get further.
      const cut = (error as NodeJS.ErrnoException).code === "ECONNRESET" || (error as Error).message === "aborted";
      let reason = cut ? `the server closed the connection after ${offset}${total !== undefined ? ` of ${total}` : ""} bytes` : (error as Error).message;
      if (rangeIgnored) reason += ", and it does not support resuming (it ignores Range), so every attempt starts again from byte 0";
      failures = await failOrRetry(options, failures, maxAttempts, reason, rangeIgnored ? 0 : offset);
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
  return finish();
  }
}

/** One connection's body appended at `progress.offset`, hashed as it is written. */
async function streamToPartial(
  body: DownloadResponse["body"],
  options: TransferOptions,
  progress: { offset: number; streamed: number },
  hash: Hasher,
  stallMs: number,
  total: number | undefined,
  probe?: SlowConnectionProbe,
): Promise<void> {
  const handle = await fs.open(options.partialPath, progress.offset === 0 ? "w" : "r+");
  const sink = {
    handle,
    written: (buffers: Buffer[], position: number, length: number) => {
      hash.update(buffers, position + length);
      probe?.written(position + length);
      options.onEvent?.({ type: "progress", downloadedBytes: position + length, totalBytes: total });
    },
  };
  const signal = probe ? (options.signal ? AbortSignal.any([options.signal, probe.signal]) : probe.signal) : options.signal;
  try {
    await streamBody(body, signal, sink, progress, stallMs);
  } finally {
    await handle.sync().catch(() => {});
    await handle.close();
  }
}

/**
 * How much of an earlier partial can be kept: only bytes of this same URL. A parallel download's
 * partial has holes, so it is continued from its recorded segments, never from its size.
 */
async function resumableOffset(options: TransferOptions): Promise<{ offset: number; etag?: string | undefined; size?: number | undefined; segments?: Segment[] }> {
  const stat = await fs.stat(options.partialPath).catch(() => undefined);
  if (!stat?.isFile() || stat.size === 0) return { offset: 0 };
  const meta = await readMeta(options.metaPath);
  const sameFile = meta?.url === options.url;
  if (sameFile && meta.segments !== undefined) {
    if (segmentsFit(meta.segments, meta.size, stat.size)) return { offset: contiguousPrefix(meta.segments), etag: meta.etag, size: meta.size, segments: meta.segments };
  } else if (sameFile && (meta.size === undefined || stat.size <= meta.size)) {
    return { offset: stat.size, etag: meta.etag, size: meta.size };
  }
  await fs.writeFile(options.partialPath, "");
  return { offset: 0 };
}

/** A fresh download is split when its first answer shows a known size, byte ranges, and enough bytes to be worth it. */
function wantsSegments(response: DownloadResponse, total: number | undefined, { connections, minBytes }: ParallelSettings): total is number {
  const ranges = response.status === 206 || header(response.headers, "accept-ranges")?.toLowerCase() === "bytes";
  return connections > 1 && total !== undefined && total >= minBytes && ranges;
}
