import type { Llama, LlamaLogLevel } from "node-llama-cpp";
import type { GpuChoice } from "./types.js";

/**
 * One llama.cpp binding per process, created on first use.
 * Its logs go to a sink: stderr with --verbose, otherwise a small ring buffer
 * that error messages can draw on (llama.cpp explains load failures only in its log).
 */
export interface LlamaLogSink {
  verbose: boolean;
  write(line: string): void;
}

const recentLogs: string[] = [];
const RECENT_LOG_LIMIT = 40;
let sink: LlamaLogSink = { verbose: false, write: () => {} };
let llamaPromise: Promise<Llama> | undefined;
let llamaGpu: GpuChoice | undefined;

export function setLlamaLogSink(next: LlamaLogSink): void {
  sink = next;
}

export function recentLlamaLogs(): string[] {
  return [...recentLogs];
}

export function clearRecentLlamaLogs(): void {
  recentLogs.length = 0;
}

function onLog(level: LlamaLogLevel, message: string): void {
  const line = message.replace(/\s+$/, "");
  if (line.length === 0) return;
  recentLogs.push(`[${level}] ${line}`);
  if (recentLogs.length > RECENT_LOG_LIMIT) recentLogs.shift();
  if (sink.verbose) sink.write(`llama.cpp ${level}: ${line}\n`);
}

export async function getSharedLlama(gpu: GpuChoice): Promise<Llama> {
  if (llamaPromise !== undefined) {
    if (llamaGpu !== gpu) {
      throw new Error(`llama.cpp was already initialised for ${llamaGpu}; cannot switch to ${gpu} in one process`);
    }
    return llamaPromise;
  }
  llamaGpu = gpu;
  llamaPromise = (async () => {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    return getLlama({
      gpu: gpu === "cpu" ? false : gpu,
      // The logger decides what is shown; llama.cpp must hand everything over.
      logLevel: sink.verbose ? LlamaLogLevel.debug : LlamaLogLevel.warn,
      logger: onLog,
      // Never compile llama.cpp behind the user's back: use the prebuilt binaries npm installed.
      build: "never",
      progressLogs: false,
      // No thread cap: each context asks for exactly the threads we chose.
      maxThreads: 0,
    });
  })();
  try {
    return await llamaPromise;
  } catch (error) {
    llamaPromise = undefined;
    llamaGpu = undefined;
    throw error;
  }
}
