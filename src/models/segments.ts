import fs from "node:fs/promises";
import { writeFileAtomic } from "../fs/atomicWrite.js";

/**
 * The plan of a download over several connections, and the `.partial.json` sidecar that records it.
 * Each segment is a byte range [start, end) of the file; `next` is the first byte not yet on disk.
 * Segments are written in place, so the partial has holes: a resume must continue every segment
 * from its recorded `next`, never from the file's size.
 */
export interface Segment {
  start: number;
  end: number;
  next: number;
}

export interface PartialMeta {
  url: string;
  etag?: string;
  size?: number;
  /** Present only while a parallel download is in progress. */
  segments?: Segment[];
}

/** The LMRUN_PULL_* settings of parallel pulls, read in one place (env overrides for tests and benchmarks). */
export interface ParallelSettings {
  connections: number;
  /** Files smaller than this stay on one connection. */
  minBytes: number;
  /** How long the first connection is watched before it is judged. */
  probeMs: number;
  /** Under this rate the first connection hands the rest of the file to several. */
  slowBytesPerSecond: number;
}

export function parallelSettings(env: NodeJS.ProcessEnv): ParallelSettings {
  const number = (name: string, fallback: number, valid: (n: number) => boolean) => {
    const value = Number(env[name] ?? fallback);
    return Number.isFinite(value) && valid(value) ? value : fallback;
  };
  return {
    connections: Math.min(Math.floor(number("LMRUN_PULL_CONNECTIONS", 4, (n) => n >= 1)), 16),
    minBytes: number("LMRUN_PULL_SEGMENT_MIN_BYTES", 64 << 20, (n) => n > 0),
    probeMs: number("LMRUN_PULL_PROBE_MS", 1000, (n) => n >= 0),
    slowBytesPerSecond: number("LMRUN_PULL_PARALLEL_BELOW_MBPS", 100, (n) => n >= 0) * 1e6,
  };
}

/** Splits [0, total) into `count` nearly equal segments, none empty. */
export function planSegments(total: number, count: number): Segment[] {
  const n = Math.max(1, Math.min(count, total));
  const segments: Segment[] = [];
  for (let i = 0; i < n; i++) {
    const start = Math.floor((total * i) / n);
    const end = Math.floor((total * (i + 1)) / n);
    segments.push({ start, end, next: start });
  }
  return segments;
}

/** The plan for the rest of a file whose first `prefix` bytes are already on disk: a done segment, then `count` more. */
export function planSegmentsFrom(prefix: number, total: number, count: number): Segment[] {
  const rest = planSegments(total - prefix, count).map((s) => ({ start: s.start + prefix, end: s.end + prefix, next: s.next + prefix }));
  return prefix > 0 ? [{ start: 0, end: prefix, next: prefix }, ...rest] : rest;
}

/**
 * Watches a single connection for its first `LMRUN_PULL_PROBE_MS` (default 1 s): if it delivered
 * less than `LMRUN_PULL_PARALLEL_BELOW_MBPS` (default 100 MB/s), it is stopped (its bytes are kept)
 * and the caller continues over several connections.
 */
export class SlowConnectionProbe {
  private readonly stop = new AbortController();
  private readonly startedAt = performance.now();
  private decided = false;
  /** Why the connection was stopped, once it was. */
  switched: string | undefined;

  constructor(
    private readonly settings: Pick<ParallelSettings, "probeMs" | "slowBytesPerSecond">,
    private readonly startOffset: number,
  ) {}

  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** After each batch on disk; the partial now ends at `fileEnd`. */
  written(fileEnd: number): void {
    if (this.decided) return;
    const elapsedMs = performance.now() - this.startedAt;
    if (elapsedMs < this.settings.probeMs) return;
    this.decided = true;
    const bytesPerSecond = ((fileEnd - this.startOffset) * 1000) / Math.max(1, elapsedMs);
    if (bytesPerSecond >= this.settings.slowBytesPerSecond) return;
    this.switched = `one connection gave ${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
    this.stop.abort(new Error(this.switched));
  }
}

/** The end of the bytes on disk with no hole before them: what may be hashed. */
export function contiguousPrefix(segments: Segment[]): number {
  let prefix = 0;
  for (const segment of segments) {
    if (segment.start !== prefix) break;
    prefix = segment.next;
    if (segment.next < segment.end) break;
  }
  return prefix;
}

export function bytesOnDisk(segments: Segment[]): number {
  return segments.reduce((sum, s) => sum + (s.next - s.start), 0);
}

/** A recorded plan can be continued only if it tiles the file exactly and claims no byte past the partial's end. */
export function segmentsFit(segments: unknown, size: number | undefined, partialSize: number): segments is Segment[] {
  if (!Array.isArray(segments) || segments.length === 0 || size === undefined) return false;
  let expectedStart = 0;
  for (const s of segments as Segment[]) {
    if (![s?.start, s?.end, s?.next].every(Number.isSafeInteger)) return false;
    if (s.start !== expectedStart || s.start > s.next || s.next > s.end || s.start >= s.end) return false;
    if (s.next > s.start && s.next > partialSize) return false;
    expectedStart = s.end;
  }
  return expectedStart === size;
}

export async function readMeta(file: string): Promise<PartialMeta | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, "utf8")) as PartialMeta;
  } catch {
    return undefined;
  }
}

export async function writeMeta(file: string, meta: PartialMeta): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(meta), { mode: 0o644 });
}

/**
 * Keeps the sidecar's segment offsets current while segments write: at most one atomic write in
 * flight, at least every `everyBytes` or `everyMs`. Offsets come from the segments' `next`, which
 * only moves once bytes are written, so the sidecar never claims a byte the partial lacks.
 */
export class SegmentMetaWriter {
  private writing: Promise<void> = Promise.resolve();
  private unsavedBytes = 0;
  private savedAt = performance.now();
  private busy = false;

  constructor(
    private readonly file: string,
    private readonly meta: Omit<PartialMeta, "segments">,
    private readonly segments: Segment[],
    private readonly everyBytes = 16 << 20,
    private readonly everyMs = 1000,
  ) {}

  noteWritten(bytes: number): void {
    this.unsavedBytes += bytes;
    if (this.busy || (this.unsavedBytes < this.everyBytes && performance.now() - this.savedAt < this.everyMs)) return;
    void this.save().catch(() => {});
  }

  /** Writes the current offsets now (after the last one in flight). */
  save(): Promise<void> {
    this.busy = true;
    this.unsavedBytes = 0;
    this.savedAt = performance.now();
    this.writing = this.writing
      .catch(() => {})
      .then(() => writeMeta(this.file, { ...this.meta, segments: this.segments.map((s) => ({ ...s })) }))
      .finally(() => (this.busy = false));
    return this.writing;
  }
}
