import fs from "node:fs/promises";
import os from "node:os";

/**
 * A cross-process lock: a file created with O_EXCL that holds the owner's pid. A lock whose owner
 * is dead (same host, pid gone) is stale and taken over; a lock from another host is trusted.
 */
export interface FileLock {
  readonly path: string;
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Called once when the lock is busy and we start waiting, with the owner's pid. */
  onWait?: (ownerPid: number | undefined) => void;
  pollMs?: number;
  /** A lock file with no readable owner older than this is stale (a crash between create and write). */
  unreadableStaleMs?: number;
}

export async function acquireLock(lockPath: string, options: AcquireOptions = {}): Promise<FileLock> {
  const pollMs = options.pollMs ?? 150;
  const me: LockOwner = { pid: process.pid, hostname: os.hostname(), startedAt: new Date().toISOString() };
  let waited = false;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const handle = await fs.open(lockPath, "wx");
      try {
        await handle.writeFile(JSON.stringify(me));
      } finally {
        await handle.close();
      }
      return { path: lockPath, release: () => releaseLock(lockPath, me) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = await readOwner(lockPath);
    if (await isStale(lockPath, owner, options.unreadableStaleMs ?? 10_000)) {
      await takeOver(lockPath, owner);
      continue;
    }
    if (!waited) {
      waited = true;
      options.onWait?.(owner?.pid);
    }
    await sleep(pollMs, options.signal);
  }
}

async function readOwner(lockPath: string): Promise<LockOwner | undefined> {
  try {
    const value = JSON.parse(await fs.readFile(lockPath, "utf8")) as Partial<LockOwner>;
    if (typeof value.pid === "number" && typeof value.hostname === "string") return value as LockOwner;
  } catch {
    // missing or half-written: judged by age below
  }
  return undefined;
}

export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function isStale(lockPath: string, owner: LockOwner | undefined, unreadableStaleMs: number): Promise<boolean> {
  if (owner === undefined) {
    try {
      const stat = await fs.stat(lockPath);
      return Date.now() - stat.mtimeMs > unreadableStaleMs;
    } catch {
      return false; // gone already: the next loop creates it
    }
  }
  return owner.hostname === os.hostname() && owner.pid !== process.pid && !processIsAlive(owner.pid);
}

/** Moves the stale lock aside (atomic), so that two waiters cannot both delete a fresh lock. */
async function takeOver(lockPath: string, staleOwner: LockOwner | undefined): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await fs.rename(lockPath, aside);
  } catch {
    return; // someone else moved it first
  }
  const moved = await readOwner(aside);
  const same = staleOwner === undefined ? moved === undefined : moved?.pid === staleOwner.pid && moved.startedAt === staleOwner.startedAt;
  if (!same) {
    // We raced and moved a live lock: put it back unless a new one exists already.
    await fs.link(aside, lockPath).catch(() => {});
  }
  await fs.rm(aside, { force: true });
}

async function releaseLock(lockPath: string, me: LockOwner): Promise<void> {
  const owner = await readOwner(lockPath);
  if (owner?.pid === me.pid && owner.startedAt === me.startedAt) await fs.rm(lockPath, { force: true });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason instanceof Error ? signal!.reason : new Error("aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export { sleep as abortableSleep };
