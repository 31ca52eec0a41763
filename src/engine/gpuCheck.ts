import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import { CancelledError } from "../errors.js";
import { checkKey, readCheckCache, writeCheckCache } from "../fs/checkCache.js";

/**
 * A GPU backend that loads can still crash at its first kernel: a CUDA build whose PTX is newer
 * than the driver ("the provided PTX was compiled with an unsupported toolchain"), a card the
 * build has no code for, a broken Vulkan driver. llama.cpp then aborts the whole process with a
 * native backtrace, which no JavaScript can catch. So before the first real use of a GPU backend
 * we run a tiny model on it in a child process, and remember the outcome per backend, device,
 * driver and binding version. ollama does the same by running its engine as a subprocess.
 */

export interface GpuCheckOutcome {
  ok: boolean;
  backend: string;
  /** Why the test run failed, from llama.cpp's own error line when it printed one. */
  reason?: string;
  checkedAt: string;
  durationMs: number;
}

interface GpuCheckCache {
  version: 1;
  entries: Record<string, GpuCheckOutcome>;
}

export interface GpuCheckIdentity {
  backend: string;
  bindingVersion: string;
  devices: string[];
  /** Changes when the driver does, so a driver update re-runs the check. */
  driver: string;
}

export function gpuCheckKey(identity: GpuCheckIdentity): string {
  return checkKey([identity.backend, identity.bindingVersion, identity.devices, identity.driver], 16);
}

/** The NVIDIA kernel module's version line on Linux; empty elsewhere. */
export async function driverFingerprint(): Promise<string> {
  try {
    return (await fs.readFile("/proc/driver/nvidia/version", "utf8")).split("\n")[0]!.trim();
  } catch {
    return "";
  }
}

export async function readGpuCheck(cacheFile: string, key: string): Promise<GpuCheckOutcome | undefined> {
  return readCache(cacheFile).entries[key];
}

export async function saveGpuCheck(cacheFile: string, key: string, outcome: GpuCheckOutcome): Promise<void> {
  const cache = readCache(cacheFile);
  cache.entries[key] = outcome;
  await writeCheckCache(cacheFile, cache, { mode: 0o644 });
}

function readCache(cacheFile: string): GpuCheckCache {
  return readCheckCache<GpuCheckCache>(cacheFile, (c) => c.version === 1 && typeof c.entries === "object" && c.entries !== null) ?? { version: 1, entries: {} };
}

/**
 * The line that explains a failed test run. llama.cpp logs the cause ("CUDA error: …") just before
 * it aborts; the backtrace after it names only addresses.
 */
export function failureReason(stderr: string, exit: { code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }, timeoutMs: number): string {
  const errorLines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("llama.cpp error:") || line.startsWith("probe error:"))
    .map((line) => line.replace(/^(llama\.cpp|probe) error:\s*/, ""))
    .filter((line) => line.length > 0 && !/^current device:|^cudaFuncGetAttributes|^in function /.test(line));
  const cause = errorLines.find((line) => /error/i.test(line)) ?? errorLines[0];
  if (cause !== undefined) return cause.replace(/\.$/, "");
  if (exit.timedOut) return `the test run did not finish in ${Math.round(timeoutMs / 100) / 10} s`;
  if (exit.signal) return `the test run crashed (${exit.signal})`;
  return `the test run exited with code ${exit.code}`;
}

export interface GpuProbeRequest {
  backend: string;
  modelPath: string;
  /** The script that loads the model on the backend (dist/engine/gpuProbeChild.js). */
  childScript: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** Runs the test in a child process: a crash there costs that process only. */
export function runGpuProbe(request: GpuProbeRequest): Promise<GpuCheckOutcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [request.childScript, request.backend, request.modelPath], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env },
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      // Keep the head (the cause) and bound memory if something floods.
      if (stderr.length < 256 * 1024) stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, request.timeoutMs);
    const onAbort = () => child.kill("SIGKILL");
    request.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
      if (request.signal?.aborted) {
        reject(request.signal.reason instanceof Error ? request.signal.reason : new Error("aborted"));
        return;
      }
      if (signal === "SIGINT" || signal === "SIGTERM" || signal === "SIGHUP") {
        // Ctrl-C reached the child too (same process group): the test was interrupted, not failed,
        // and must not be remembered as a broken backend.
        reject(new CancelledError("interrupted while testing the GPU backend"));
        return;
      }
      const durationMs = Date.now() - started;
      const checkedAt = new Date().toISOString();
      const ok = code === 0 && /"ok":true/.test(stdout);
      resolve(
        ok
          ? { ok, backend: request.backend, checkedAt, durationMs }
          : { ok, backend: request.backend, reason: failureReason(stderr, { code, signal, timedOut }, request.timeoutMs), checkedAt, durationMs },
      );
    });
  });
}
