import fs from "node:fs/promises";
import path from "node:path";
import { CancelledError, LmrunError } from "../errors.js";
import { authHeadersFor, listRepoFiles } from "./hf.js";
import { acquireLock } from "./lock.js";
import { LOCK_SUFFIX, PARTIAL_META_SUFFIX, PARTIAL_SUFFIX, syncDirectory, type ModelStore } from "./store.js";
import { bytesOnDisk, readMeta } from "./segments.js";
import { HttpStatusError, transferToPartial, type TransferEvent } from "./transfer.js";

/** One file to fetch into the store. */
export interface PullTarget {
  /** The canonical reference the user gave (recorded in the manifest). */
  ref: string;
  url: string;
  /** Path relative to the store. */
  file: string;
  quant?: string;
  expectedSha256?: string;
  /** Where expectedSha256 came from: models.json, or the Hugging Face API's LFS listing. */
  expectedSha256Source?: "catalogue" | "api";
  expectedSize?: number;
  /** For a 404: the Hugging Face repo whose files to list. */
  repo?: { user: string; repo: string; branch?: string };
}

export type PullEvent =
  | ({ file: string } & TransferEvent)
  | { type: "wait-lock"; file: string; ownerPid: number | undefined }
  | { type: "verified"; file: string; sha256: string; against: "catalogue" | "etag" | "api" | "none" };

export interface PullFileResult {
  file: string;
  path: string;
  size: number;
  sha256: string | undefined;
  /** What the hash was checked against; "none" when no source knew it (the hash is recorded for `verify`). */
  verifiedAgainst: "catalogue" | "etag" | "api" | "none" | "already-present";
  alreadyPresent: boolean;
  resumedFrom: number;
  transferredBytes: number;
}

export interface PullOptions {
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onEvent?: (event: PullEvent) => void;
  /** Overrides for tests: LMRUN_PULL_STALL_MS, LMRUN_PULL_RETRIES. */
  stallMs?: number;
  maxAttempts?: number;
  maxRateLimitWaitMs?: number;
}

/**
 * Pulls one file: under a per-file lock, into FILE.partial (resuming), verified, then renamed into
 * place and recorded in the manifest. The final path never holds anything but a complete verified file.
 */
export async function pullFile(store: ModelStore, target: PullTarget, options: PullOptions): Promise<PullFileResult> {
  const finalPath = store.absolute(target.file);
  const present = await presentResult(store, target, finalPath);
  if (present) return present;
  await fs.mkdir(path.dirname(finalPath), { recursive: true });
  try {
    const lock = await acquireLock(finalPath + LOCK_SUFFIX, {
      ...(options.signal ? { signal: options.signal } : {}),
      onWait: (ownerPid) => options.onEvent?.({ type: "wait-lock", file: target.file, ownerPid }),
    }).catch((error: unknown) => {
      if (options.signal?.aborted) throw new CancelledError("pull interrupted while waiting for another pull of the same file");
      throw error;
    });
    try {
      // Another process may have finished it while we waited.
      const finished = await presentResult(store, target, finalPath);
      if (finished) return finished;
      return await downloadVerifyAndPlace(store, target, finalPath, options);
    } finally {
      await lock.release();
    }
  } catch (error) {
    // A pull that failed before keeping anything (a 404, say) leaves no empty directories behind.
    await store.pruneEmptyDirectories(target.file).catch(() => undefined);
    throw error;
  }
}

async function presentResult(store: ModelStore, target: PullTarget, finalPath: string): Promise<PullFileResult | undefined> {
  const stat = await fs.stat(finalPath).catch(() => undefined);
  if (!stat?.isFile()) return undefined;
  await store.addRef(target.file, target.ref);
  return {
    file: target.file,
    path: finalPath,
    size: stat.size,
    sha256: undefined,
    verifiedAgainst: "already-present",
    alreadyPresent: true,
    resumedFrom: 0,
    transferredBytes: 0,
  };
}

async function downloadVerifyAndPlace(store: ModelStore, target: PullTarget, finalPath: string, options: PullOptions): Promise<PullFileResult> {
  const partialPath = finalPath + PARTIAL_SUFFIX;
  const metaPath = finalPath + PARTIAL_META_SUFFIX;
  const env = options.env;
  const stallMs = options.stallMs ?? positiveNumber(env.LMRUN_PULL_STALL_MS);
  const maxAttempts = options.maxAttempts ?? positiveNumber(env.LMRUN_PULL_RETRIES);
  const maxRateLimitWaitMs = options.maxRateLimitWaitMs ?? positiveNumber(env.LMRUN_PULL_MAX_WAIT_MS);
  const transfer = () =>
    transferToPartial({
      url: target.url,
      partialPath,
      metaPath,
      env,
      headersFor: (url) => authHeadersFor(url, env),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(target.expectedSize !== undefined ? { expectedSize: target.expectedSize } : {}),
      ...(stallMs !== undefined ? { stallMs } : {}),
      ...(maxAttempts !== undefined ? { maxAttempts } : {}),
      ...(maxRateLimitWaitMs !== undefined ? { maxRateLimitWaitMs } : {}),
      onEvent: (event) => options.onEvent?.({ ...event, file: target.file }),
    });

  let result;
  let retriedAfterMismatch = false;
  for (;;) {
    try {
      result = await transfer();
    } catch (error) {
      if (options.signal?.aborted) {
        const kept = await keptBytes(partialPath, metaPath);
        throw new CancelledError(`pull interrupted with ${kept} bytes kept: run \`lmrun pull ${target.ref}\` again to resume`);
      }
      if (error instanceof HttpStatusError && error.status === 404) throw await notFoundError(target, env, options.signal);
      throw error;
    }
    const expected = target.expectedSha256 ?? result.serverSha256;
    const sizeWrong = target.expectedSize !== undefined && result.size !== target.expectedSize;
    const hashWrong = expected !== undefined && result.sha256 !== expected;
    if (!sizeWrong && !hashWrong) break;
    await fs.rm(partialPath, { force: true });
    await fs.rm(metaPath, { force: true });
    // A corrupt partial from an earlier run: one fresh download before giving up.
    if (result.resumedFrom > 0 && !retriedAfterMismatch) {
      retriedAfterMismatch = true;
      options.onEvent?.({ type: "restart", file: target.file, reason: "the resumed download did not verify; downloading it again from the start" });
      continue;
    }
    const what = hashWrong ? `sha256 mismatch: expected ${expected}, got ${result.sha256}` : `size mismatch: expected ${target.expectedSize} bytes, got ${result.size}`;
    throw new LmrunError(`${path.basename(target.file)} failed verification (${what}); the bad download was deleted`, {
      hint: "Pull again; if it happens again, the server is sending different bytes than it announces",
    });
  }
  await checkGgufMagic(partialPath, target, metaPath);
  const against = target.expectedSha256 !== undefined ? (target.expectedSha256Source ?? "catalogue") : result.serverSha256 !== undefined ? "etag" : "none";
  options.onEvent?.({ type: "verified", file: target.file, sha256: result.sha256, against });
  await fs.rename(partialPath, finalPath);
  await syncDirectory(path.dirname(finalPath));
  await fs.rm(metaPath, { force: true });
  await store.upsert({
    file: target.file,
    refs: [target.ref],
    ...(target.quant !== undefined ? { quant: target.quant } : {}),
    url: target.url,
    size: result.size,
    sha256: result.sha256,
    sha256Source: against === "none" ? "computed" : against,
    pulledAt: new Date().toISOString(),
    lastUsed: new Date().toISOString(),
  });
  return {
    file: target.file,
    path: finalPath,
    size: result.size,
    sha256: result.sha256,
    verifiedAgainst: against,
    alreadyPresent: false,
    resumedFrom: result.resumedFrom,
    transferredBytes: result.transferredBytes,
  };
}

async function checkGgufMagic(partialPath: string, target: PullTarget, metaPath: string): Promise<void> {
  const handle = await fs.open(partialPath, "r");
  const head = Buffer.alloc(4);
  try {
    await handle.read(head, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (head.toString("latin1") !== "GGUF") {
    await fs.rm(partialPath, { force: true });
    await fs.rm(metaPath, { force: true });
    throw new LmrunError(`${target.url} is not a GGUF file (it does not start with the GGUF magic bytes); it was deleted`, {
      hint: "Check the URL: it should point at a .gguf file (on Hugging Face, a /resolve/ link)",
    });
  }
}

async function notFoundError(target: PullTarget, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<LmrunError> {
  if (target.repo === undefined) return new LmrunError(`not found (HTTP 404): ${target.url}`, { hint: "Check the URL" });
  const { user, repo } = target.repo;
  try {
    const files = (await listRepoFiles(env, user, repo, { ...(target.repo.branch ? { branch: target.repo.branch } : {}), ...(signal ? { signal } : {}) }))
      .map((f) => f.path)
      .filter((f) => f.toLowerCase().endsWith(".gguf"));
    const wanted = target.file.split("/").pop();
    return new LmrunError(`${user}/${repo} has no file ${wanted} (HTTP 404)`, {
      hint: files.length > 0 ? `It has: ${files.join(", ")}` : "It has no .gguf files",
    });
  } catch (error) {
    if (error instanceof LmrunError) return error;
    return new LmrunError(`not found (HTTP 404): ${target.url}`);
  }
}

function positiveNumber(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** What an interrupted pull keeps: the bytes its segments wrote (a parallel pull's partial is sparse, its size says nothing). */
async function keptBytes(partialPath: string, metaPath: string): Promise<number> {
  const meta = await readMeta(metaPath);
  if (meta?.segments && Array.isArray(meta.segments)) return bytesOnDisk(meta.segments);
  return fs.stat(partialPath).then((s) => s.size, () => 0);
}
