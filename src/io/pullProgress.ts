import type { PullEvent } from "../models/pull.js";
import { formatBytes } from "./format.js";
import type { Output } from "./output.js";
import { startSpinner, type Spinner } from "./progress.js";

/** Speed over a sliding window of recent samples, so that the ETA follows the current rate. */
export class RateMeter {
  private samples: { at: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3000) {}

  add(bytes: number, at = performance.now()): void {
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0]!.at > this.windowMs) this.samples.shift();
  }

  bytesPerSecond(): number {
    if (this.samples.length < 2) return 0;
    const first = this.samples[0]!;
    const last = this.samples.at(-1)!;
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? Math.max(0, last.bytes - first.bytes) / seconds : 0;
  }
}

export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "-";
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** `name  45.2 MB / 491 MB  12.3 MB/s  ETA 36s` */
export function formatProgressLine(name: string, downloaded: number, total: number | undefined, bytesPerSecond: number): string {
  const size = total !== undefined ? `${formatBytes(downloaded)} / ${formatBytes(total)} (${Math.floor((downloaded / Math.max(total, 1)) * 100)}%)` : formatBytes(downloaded);
  const eta = total !== undefined && bytesPerSecond > 0 ? (total - downloaded) / bytesPerSecond : undefined;
  return `pulling ${name}  ${size}  ${formatBytes(Math.round(bytesPerSecond))}/s  ETA ${formatEta(eta)}`;
}

export interface PullReporter {
  onEvent: (event: PullEvent) => void;
  stop(): void;
}

/**
 * Shows pull progress: a status line on a terminal's stderr, JSON lines on stdout with --json,
 * and nothing otherwise (warnings about retries still go to stderr when --verbose).
 */
export async function createPullReporter(
  name: string,
  options: { out: Output; stderr: NodeJS.WritableStream & { isTTY?: boolean }; env: NodeJS.ProcessEnv; quiet: boolean; json: boolean; verbose: boolean; jsonIntervalMs?: number },
): Promise<PullReporter> {
  const meter = new RateMeter();
  const spinner: Spinner | undefined = options.json ? undefined : await startSpinner(`pulling ${name}`, { stderr: options.stderr, env: options.env, quiet: options.quiet });
  let lastJsonAt = 0;
  const interval = options.jsonIntervalMs ?? 250;
  return {
    onEvent: (event) => {
      if (event.type === "start") meter.add(event.resumeFrom);
      if (event.type === "progress") {
        meter.add(event.downloadedBytes);
        const rate = meter.bytesPerSecond();
        spinner?.update(formatProgressLine(name, event.downloadedBytes, event.totalBytes, rate));
        if (options.json) {
          const now = performance.now();
          if (now - lastJsonAt < interval && event.downloadedBytes !== event.totalBytes) return;
          lastJsonAt = now;
          const eta = event.totalBytes !== undefined && rate > 0 ? (event.totalBytes - event.downloadedBytes) / rate : null;
          options.out.jsonLine({ event: "progress", model: name, file: event.file, downloadedBytes: event.downloadedBytes, totalBytes: event.totalBytes ?? null, bytesPerSecond: Math.round(rate), etaSeconds: eta === null ? null : Math.round(eta * 10) / 10 });
        }
        return;
      }
      if (options.json) {
        options.out.jsonLine({ event: event.type, model: name, ...event });
        return;
      }
      if (event.type === "wait-lock") spinner?.update(`waiting for another pull of ${name} (pid ${event.ownerPid ?? "?"})`);
      if (event.type === "retry" || event.type === "restart") {
        const text = event.type === "retry" ? `${event.reason}; retrying in ${(event.delayMs / 1000).toFixed(1)}s` : event.reason;
        if (options.verbose || options.out.stderrIsTTY) options.out.warn(text);
      }
      if (event.type === "verified") spinner?.update(`verified ${name}`);
    },
    stop: () => spinner?.stop(),
  };
}
