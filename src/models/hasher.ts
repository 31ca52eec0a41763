import { createHash } from "node:crypto";
import fs from "node:fs";
import { Worker } from "node:worker_threads";

/**
 * A running sha256 over a download's partial file, fed in file order. Small files are hashed inline
 * from the bytes in memory. Big files are hashed by a worker thread that reads the partial back from
 * disk right behind the writes: the main thread neither hashes nor copies, hashing overlaps with the
 * transfer, and the hash covers the bytes that are really on disk.
 */
export interface Hasher {
  /** `chunks` were just written and the partial now ends at `fileEnd`. */
  update(chunks: Buffer[], fileEnd: number): void;
  /** Hashes what the partial holds from where the hash is up to `fileEnd` (a resumed download, or a parallel one's prefix). */
  catchUp(fileEnd: number, signal?: AbortSignal): Promise<void>;
  digest(): Promise<string>;
  /** Stops a worker without a digest (on errors). */
  dispose(): void;
}

export function createHasher(expectedBytes: number | undefined, partialPath: string): Hasher {
  return expectedBytes !== undefined && expectedBytes >= workerThreshold() ? new WorkerHasher(partialPath) : new InlineHasher(partialPath);
}

/** Below this a worker's start-up costs more than it saves. LMRUN_HASH_WORKER_MIN_BYTES overrides it (benchmarks). */
function workerThreshold(): number {
  const raw = Number(process.env.LMRUN_HASH_WORKER_MIN_BYTES);
  return Number.isFinite(raw) && raw > 0 ? raw : 32 << 20;
}

class InlineHasher implements Hasher {
  private readonly hash = createHash("sha256");
  /** Where the hash has got to; reads from disk are chained so that they stay in file order. */
  private position = 0;
  private reading: Promise<void> = Promise.resolve();
  constructor(private readonly partialPath: string) {}

  update(chunks: Buffer[], fileEnd: number): void {
    for (const chunk of chunks) this.hash.update(chunk);
    this.position = fileEnd;
  }

  /** Reads the partial from where the hash is to `fileEnd`: a resume, or a parallel download's prefix growing. */
  catchUp(fileEnd: number, signal?: AbortSignal): Promise<void> {
    this.reading = this.reading.then(() => this.readUpTo(fileEnd, signal));
    return this.reading;
  }

  private async readUpTo(fileEnd: number, signal?: AbortSignal): Promise<void> {
    if (fileEnd <= this.position) return;
    const stream = fs.createReadStream(this.partialPath, { start: this.position, end: fileEnd - 1, highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      this.hash.update(chunk);
      this.position += chunk.length;
    }
    if (this.position !== fileEnd) throw new Error("the partial file is shorter than what was written");
  }

  async digest(): Promise<string> {
    await this.reading;
    return this.hash.digest("hex");
  }

  dispose(): void {}
}

// The worker follows the partial: "up to N" messages say how far it may read; "digest" answers once it got there.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const hash = require("node:crypto").createHash("sha256");
let fd;
const buffer = Buffer.allocUnsafe(4 << 20);
let position = 0;
let target = 0;
let digestWanted = false;
function work() {
  try {
    if (fd === undefined && target > 0) fd = fs.openSync(workerData.path, "r");
    while (position < target) {
      const n = fs.readSync(fd, buffer, 0, Math.min(buffer.length, target - position), position);
      if (n === 0) throw new Error("the partial file is shorter than what was written");
      hash.update(buffer.subarray(0, n));
      position += n;
    }
    if (digestWanted) parentPort.postMessage({ hex: hash.digest("hex") });
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message || error) });
  }
}
parentPort.on("message", (message) => {
  if (message === "digest") digestWanted = true;
  else target = Math.max(target, message);
  work();
});
`;

class WorkerHasher implements Hasher {
  private readonly worker: Worker;
  private failed: Error | undefined;

  constructor(partialPath: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path: partialPath } });
    this.worker.on("error", (error) => (this.failed = error));
    this.worker.on("message", (message: { error?: string }) => {
      if (message.error) this.failed = new Error(message.error);
    });
    // The worker must not keep the process alive if a pull ends in an error.
    this.worker.unref();
  }

  update(_chunks: Buffer[], fileEnd: number): void {
    this.worker.postMessage(fileEnd);
  }

  async catchUp(fileEnd: number): Promise<void> {
    this.worker.postMessage(fileEnd);
  }

  digest(): Promise<string> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.worker.ref();
      const onMessage = (message: { hex?: string; error?: string }) => {
        if (message.hex === undefined && message.error === undefined) return;
        this.worker.off("message", onMessage);
        void this.worker.terminate();
        if (message.hex !== undefined) resolve(message.hex);
        else reject(new Error(`hashing the download failed: ${message.error}`));
      };
      this.worker.on("message", onMessage);
      this.worker.once("error", reject);
      this.worker.postMessage("digest");
    });
  }

  dispose(): void {
    void this.worker.terminate();
  }
}
