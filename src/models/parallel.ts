import fs from "node:fs/promises";
import { failOrRetry, PartialWriteError, requestFollowingRedirects, streamBody, throwIfRefused, waitOutRateLimit, writeFailure, type DownloadResponse } from "./download.js";
import type { Hasher } from "./hasher.js";
import { header } from "./http.js";
import { bytesOnDisk, contiguousPrefix, SegmentMetaWriter, writeMeta, type Segment } from "./segments.js";
import type { TransferOptions } from "./transfer.js";

/**
 * A download over several connections: each segment of the plan is fetched with a closed Range and
 * written at its own offsets in the one partial. The hash is fed only the contiguous prefix (the
 * hasher reads the partial back in file order). The plan and each segment's progress are kept in
 * `.partial.json` so that another process can continue every segment.
 *
 * When the server does not honour closed ranges the segments stop, the partial is cut back to its
 * contiguous prefix, and the caller goes on over one connection from there.
 */
export type SegmentOutcome = (
  | { kind: "done" }
  | { kind: "fallback"; reason: string; prefix: number }
  | { kind: "restart"; reason: string }
) & {
  /** Bytes received in this call. */
  transferred: number;
  /** The sha256 a redirect vouched for (Hugging Face X-Linked-Etag), when one was seen. */
  serverSha256?: string;
};

export interface SegmentedDownloadOptions {
  transfer: TransferOptions;
  segments: Segment[];
  total: number;
  etag: string | undefined;
  hash: Hasher;
  stallMs: number;
  maxAttempts: number;
  /** Segment 0's answer already in hand (a fresh download's first GET, a 200): no extra round trip. */
  firstResponse?: DownloadResponse;
}

/** Why the segments stopped early without an error for the user. */
class SegmentsStop extends Error {
  constructor(
    readonly kind: "fallback" | "restart",
    reason: string,
  ) {
    super(reason);
  }
}

export async function downloadSegments(run: SegmentedDownloadOptions): Promise<SegmentOutcome> {
  return new SegmentedDownload(run).run();
}

class SegmentedDownload {
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  /** The transfer's options with a signal that also stops when another segment fails. */
  private readonly options: TransferOptions;
  private readonly metaWriter: SegmentMetaWriter;
  private handle: fs.FileHandle | undefined;
  private hashedTo: number;
  private transferred = 0;
  private rateLimited = 0;
  private firstFailure: unknown;
  private serverSha256: string | undefined;

  constructor(private readonly run_: SegmentedDownloadOptions) {
    const user = run_.transfer.signal;
    this.signal = user ? AbortSignal.any([user, this.stop.signal]) : this.stop.signal;
    this.options = { ...run_.transfer, signal: this.signal };
    const meta = { url: run_.transfer.url, ...(run_.etag !== undefined ? { etag: run_.etag } : {}), size: run_.total };
    this.metaWriter = new SegmentMetaWriter(run_.transfer.metaPath, meta, run_.segments);
    this.hashedTo = contiguousPrefix(run_.segments);
  }

  async run(): Promise<SegmentOutcome> {
    const { segments, firstResponse } = this.run_;
    // The plan is on disk before any segment but the first is requested.
    await this.metaWriter.save();
    // "r+": never truncate what other segments (or an earlier process) wrote.
    this.handle = await fs.open(this.run_.transfer.partialPath, "r+");
    try {
      await Promise.all(segments.map((segment, i) => this.runSegment(segment, i, i === 0 ? firstResponse : undefined).catch((error: unknown) => this.fail(error))));
    } finally {
      await this.handle.sync().catch(() => {});
      await this.handle.close();
    }
    if (this.firstFailure instanceof SegmentsStop) {
      if (this.firstFailure.kind === "restart") {
        await this.metaWriter.save().catch(() => {});
        return { kind: "restart", reason: this.firstFailure.message, ...this.tally() };
      }
      return { kind: "fallback", reason: this.firstFailure.message, prefix: await this.cutBackToPrefix(), ...this.tally() };
    }
    // Interrupted or failed: record where each segment got to, so that the next pull continues them.
    await this.metaWriter.save().catch(() => {});
    if (this.firstFailure !== undefined) throw this.firstFailure;
    return { kind: "done", ...this.tally() };
  }

  private tally(): { transferred: number; serverSha256?: string } {
    return { transferred: this.transferred, ...(this.serverSha256 !== undefined ? { serverSha256: this.serverSha256 } : {}) };
  }

  /** The first failure stops every segment; later ones are only its echo. */
  private fail(error: unknown): void {
    if (this.firstFailure === undefined) this.firstFailure = error;
    this.stop.abort(error);
  }

  private async runSegment(segment: Segment, index: number, first: DownloadResponse | undefined): Promise<void> {
    let failures = 0;
    let response = first;
    while (segment.next < segment.end) {
      this.signal.throwIfAborted();
      if (response === undefined) {
        try {
          response = await requestFollowingRedirects(this.options, `bytes=${segment.next}-${segment.end - 1}`);
        } catch (error) {
          if (this.signal.aborted) throw error;
          failures = await failOrRetry(this.options, failures, this.run_.maxAttempts, `cannot reach ${new URL(this.options.url).host}: ${(error as Error).message}`);
          continue;
        }
        const verdict = await this.checkAnswer(response, segment);
        if (verdict !== "ok") {
          response = undefined;
          if (verdict !== "again") failures = await failOrRetry(this.options, failures, this.run_.maxAttempts, verdict);
          continue;
        }
      }
      const body = response.body;
      response = undefined;
      try {
        await this.streamSegment(body, segment);
      } catch (error) {
        if (this.signal.aborted) throw error;
        if (error instanceof PartialWriteError) throw writeFailure(error, this.options.partialPath, this.run_.total);
        failures = await failOrRetry(this.options, failures, this.run_.maxAttempts, `segment ${index + 1}: ${(error as Error).message}`);
      }
    }
  }

  /**
   * Whether an answer to a closed range can be streamed: "ok", "again" (after a 429 wait), or a
   * reason to retry. Throws for what no retry fixes, and SegmentsStop when ranges are not honoured.
   */
  private async checkAnswer(response: DownloadResponse, segment: Segment): Promise<"ok" | "again" | string> {
    const { status } = response;
    this.serverSha256 ??= response.linkedSha256;
    if (status === 429) {
      this.rateLimited = await waitOutRateLimit(this.options, response, this.rateLimited);
      return "again";
    }
    throwIfRefused(response, this.options.url);
    if (status === 200 || status === 416) {
      response.body.destroy();
      throw new SegmentsStop("fallback", `the server does not honour byte ranges (HTTP ${status} to a closed Range)`);
    }
    if (status !== 206) {
      response.body.resume();
      return `HTTP ${status} from ${new URL(response.url).host}`;
    }
    if (this.run_.etag !== undefined && response.etag !== undefined && response.etag !== this.run_.etag) {
      response.body.destroy();
      throw new SegmentsStop("restart", "the remote file changed since the partial download");
    }
    const range = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(header(response.headers, "content-range") ?? "");
    if (!range || Number(range[1]) !== segment.next || Number(range[2]) !== segment.end - 1) {
      response.body.destroy();
      throw new SegmentsStop("fallback", `the server answered a different range (asked ${segment.next}-${segment.end - 1}, got ${range ? `${range[1]}-${range[2]}` : "none"})`);
    }
    return "ok";
  }

  private async streamSegment(body: DownloadResponse["body"], segment: Segment): Promise<void> {
    const progress = { offset: segment.next, streamed: 0 };
    const sink = {
      handle: this.handle!,
      written: (_buffers: Buffer[], position: number, length: number) => {
        segment.next = position + length;
        this.transferred += length;
        this.written(length);
      },
    };
    await streamBody(body, this.signal, sink, progress, this.run_.stallMs, segment.end);
  }

  /** After each batch on disk: hash what became contiguous, note it for the sidecar, report the sum. */
  private written(length: number): void {
    const { segments, hash, total } = this.run_;
    const prefix = contiguousPrefix(segments);
    if (prefix > this.hashedTo) {
      this.hashedTo = prefix;
      // A failed read-back surfaces at digest().
      hash.catchUp(prefix).catch(() => {});
    }
    this.metaWriter.noteWritten(length);
    this.options.onEvent?.({ type: "progress", downloadedBytes: bytesOnDisk(segments), totalBytes: total });
  }

  /**
   * Leaves only the contiguous prefix, recorded as a plain (one-connection) partial. Each step leaves
   * a sidecar that matches the file: segments past the prefix are first recorded as empty.
   */
  private async cutBackToPrefix(): Promise<number> {
    const { segments, transfer, hash } = this.run_;
    const prefix = contiguousPrefix(segments);
    for (const segment of segments) if (segment.start >= prefix) segment.next = segment.start;
    await this.metaWriter.save();
    await fs.truncate(transfer.partialPath, prefix);
    await writeMeta(transfer.metaPath, { url: transfer.url, ...(this.run_.etag !== undefined ? { etag: this.run_.etag } : {}), size: this.run_.total });
    await hash.catchUp(prefix);
    return prefix;
  }
}
