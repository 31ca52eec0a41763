import { constants } from "node:os";
import { existsSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../config/paths.js";
import { llamaCppRelease } from "./binding.js";
import { terminationGraceMs } from "../termination.js";

/** What the persistent-threadpool shim (native/threadpool.c) reports about itself. */
export interface ThreadpoolStatus {
  /** The shim is in this process (Linux, built at install, not turned off). */
  loaded: boolean;
  /** Contexts get persistent pools (false: llama.cpp's per-decode threads, see `problem`). */
  enabled: boolean;
  poolsCreated: number;
  decodesWithPool: number;
  /** Every llama_decode call that went through the shim, and the time spent inside them. */
  decodes: number;
  decodeMs: number;
  /** Generation threads follow the machine's load (lmrun chose the count; see native/threadpool.c). */
  adaptive: boolean;
  /** Single-token decodes by the thread count they ran with, while adaptive. */
  tokensByThreads: Record<string, number>;
  /** Times the adaptive count changed after trying another. */
  threadSwitches: number;
  /** Greedy requests holding the adaptive count where it is (holdThreadCount). */
  adaptiveHolds: number;
  /** Contexts made with a unified KV cache on request (requestUnifiedKvCache). */
  unifiedContexts: number;
  /** Generation contexts whose compute buffer holds logits for one token a sequence (limitOutputs). */
  outputLimitedContexts: number;
  /** The libllama whose llama_decode the shim forwards to. */
  library: string;
  problem: string;
}

interface ShimModule {
  status(): Omit<ThreadpoolStatus, "loaded"> & { resolved: boolean };
  claimLastContext(): boolean;
  decodeToken(token: number): number;
  setAdaptiveThreads?(generation: boolean, batches: boolean): boolean;
  holdAdaptiveThreads?(delta: number): number;
  watchTermination?(graceMs: number): boolean;
  requestUnifiedKvCache?(sequences: number): boolean;
  limitOutputs?(sequences: number): boolean;
  tapLogits?(sequenceId: number, position: number, targets: number[]): number;
  takeTap?(id: number): number[] | null;
  clearTaps?(): null;
  sharePrefix?(sequenceId: number, count: number, others: number[]): boolean;
  clearSharedPrefixes?(): null;
  trimMalloc?(): boolean;
  releaseFilePages?(path: string): number;
}

/**
 * A task's context decoded once for all its choices, in the same llama_decode as the choices, as
 * llama-perplexity does (see native/threadpool.c, shared prefixes).
 */
export interface PrefixSharing {
  /** In the next decode holding them, the tokens of `sequenceId` below `count` belong to `others` too. */
  share(sequenceId: number, count: number, others: number[]): boolean;
  /** Drops what no decode used. */
  clear(): void;
}

/**
 * Logit summaries at chosen (sequence, position) pairs, computed by the shim right after the decode
 * that evaluates them, as llama-perplexity's compute_logprobs() does (see native/threadpool.c).
 */
export interface LogitTaps {
  /** Asks for the summary after the token at this position; -1 when it cannot be taken. */
  tap(sequenceId: number, position: number, targets: number[]): number;
  /** [maxLogit, sumExp in float, sumExp in double, ...the targets' logits] once the decode ran (the tap is freed), else null. */
  take(id: number): number[] | null;
  /** Drops every tap (a run that stopped). */
  clear(): void;
}

/** One-token synchronous decodes on a claimed context (see native/threadpool.c), for the bench. */
export interface SyncDecoder {
  /** Claims the context of the latest decode through the binding; false: not possible here. */
  claimLastContext(): boolean;
  /** llama_decode of one token at the next position, then llama_synchronize; 0 on success. */
  decodeToken(token: number): number;
}

let shim: ShimModule | undefined;
const TERMINATION_BACKSTOP_MARGIN_MS = 500;
let notLoadedReason = "not loaded yet";

/** Where the install step (scripts/build-native.mjs) puts the compiled shim. */
export function threadpoolShimPath(): string {
  return path.join(packageRoot(), "dist", "native", "threadpool.node");
}

/**
 * The llama.cpp release whose llama.h / ggml.h the shim's declarations (llama_batch,
 * ggml_threadpool_params) were checked against. Another release gets no shim until they are
 * checked again: a changed struct passed by value would corrupt decodes.
 */
export const VERIFIED_LLAMA_CPP_RELEASE = "v0.5.0";

/**
 * Loads the shim that gives node-llama-cpp's contexts a persistent ggml threadpool, as
 * llama-bench and llama-cli have. Call it after node-llama-cpp loaded its binding and before the
 * first decode: the binding's calls bind lazily, so they then resolve to the shim's functions.
 * Linux only (symbol interposition through RTLD_GLOBAL); LMRUN_THREADPOOL=0 leaves the binding
 * untouched. Never throws.
 */
export function loadThreadpoolShim(binding: { llamaCppRelease: string }): void {
  if (shim) return;
  const reason = reasonNotToLoad(process.env, binding.llamaCppRelease);
  if (reason !== undefined) {
    notLoadedReason = reason;
    return;
  }
  const file = threadpoolShimPath();
  try {
    const module = { exports: {} as ShimModule };
    process.dlopen(module, file, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
    shim = module.exports;
    // SIGTERM must end the process even while this thread is inside a long synchronous native call
    // (tokenising a corpus): entry.ts ends it after 1.5 s when it can run, this after 2 s when it cannot.
    shim.watchTermination?.(nativeTerminationGraceMs());
  } catch (error) {
    notLoadedReason = `could not be loaded: ${(error as Error).message.split("\n")[0]}`;
  }
}

/** Hands the free pages of glibc's malloc arenas back to the system (native/threadpool.c); false without the shim or glibc. */
/**
 * Drops the process's page-table entries over its read-only mappings of a file (see release_file_pages in
 * native/threadpool.c): after a model load, the pages of tensors copied into repacked buffers leave the RSS.
 * Bytes the mappings spanned; -1 without the shim or where /proc/self/maps cannot be read.
 */
export function releaseFilePages(filePath: string): number {
  return shim?.releaseFilePages?.(filePath) ?? -1;
}

export function trimMalloc(): boolean {
  return shim?.trimMalloc?.() ?? false;
}

/**
 * The native backstop comes half a second after entry.ts's own deadline (termination.ts), read when
 * the shim loads: a command that extends the grace (serve) does so before it loads a model.
 */
function nativeTerminationGraceMs(): number {
  return terminationGraceMs() + TERMINATION_BACKSTOP_MARGIN_MS;
}

/** Whether generation will run on persistent pools (decides the default thread count), without loading anything. */
export function threadpoolShimAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  return reasonNotToLoad(env, llamaCppRelease()) === undefined;
}

function reasonNotToLoad(env: NodeJS.ProcessEnv, llamaCppRelease: string): string | undefined {
  if (process.platform !== "linux") return "only on Linux";
  if (env.LMRUN_THREADPOOL === "0") return "turned off by LMRUN_THREADPOOL=0";
  if (llamaCppRelease !== VERIFIED_LLAMA_CPP_RELEASE) return `not checked against llama.cpp ${llamaCppRelease} (only ${VERIFIED_LLAMA_CPP_RELEASE})`;
  if (!existsSync(threadpoolShimPath())) return "not built (it needs a C compiler at install: install gcc, then run `npm run build`)";
  return undefined;
}

/** The shim's synchronous decoder, when the shim is loaded and resolved (bench only). */
export function syncDecoder(): SyncDecoder | undefined {
  if (!shim || typeof shim.decodeToken !== "function" || !shim.status().resolved) return undefined;
  // Node-API functions need no `this`: the bench's token loop calls them directly.
  return { claimLastContext: shim.claimLastContext, decodeToken: shim.decodeToken };
}

/**
 * Lets single-token decodes (generation) and prompt batches use fewer threads than the context's
 * counts while other processes keep the cores busy (see native/threadpool.c). For thread counts
 * lmrun chose; a count the user gave, and the bench, run exactly as asked. No-op without the shim.
 */
export function setAdaptiveThreads(generation: boolean, batches: boolean): void {
  shim?.setAdaptiveThreads?.(generation, batches);
}

/**
 * Keeps the adaptive generation thread count where it is until the returned function is called: for
 * a greedy (temperature 0) request, whose text llama.cpp makes depend on the thread count past a few
 * hundred tokens, so the same request repeats exactly. No-op without the shim or adaptive threads.
 */
export function holdThreadCount(): () => void {
  if (shim?.holdAdaptiveThreads === undefined) return () => {};
  shim.holdAdaptiveThreads(1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    shim?.holdAdaptiveThreads?.(-1);
  };
}

/**
 * Asks the shim to give contexts created with this many sequences a unified KV cache (one cache all
 * sequences share, as llama-perplexity's task scores use; node-llama-cpp always splits it), until it
 * is called with 0. False when the shim cannot (not loaded, or llama_context_params not as declared).
 */
export function requestUnifiedKvCache(sequences: number): boolean {
  return shim?.requestUnifiedKvCache?.(sequences) === true;
}

/**
 * Asks the shim to size the compute buffer of contexts created with this many sequences for one
 * token's logits a sequence (llama-server's n_outputs_max = n_parallel), until it is called with 0:
 * for contexts that only generate. False when the shim cannot.
 */
export function limitOutputs(sequences: number): boolean {
  return shim?.limitOutputs?.(sequences) === true;
}

/** The shim's prefix sharing, when it is loaded and offers it. */
export function prefixSharing(): PrefixSharing | undefined {
  const { sharePrefix, clearSharedPrefixes } = shim ?? {};
  if (!sharePrefix || !clearSharedPrefixes) return undefined;
  return { share: sharePrefix, clear: () => void clearSharedPrefixes() };
}

/** The shim's logit taps, when it is loaded and offers them. */
export function logitTaps(): LogitTaps | undefined {
  const { tapLogits, takeTap, clearTaps } = shim ?? {};
  if (!tapLogits || !takeTap || !clearTaps) return undefined;
  return { tap: tapLogits, take: takeTap, clear: () => void clearTaps() };
}

export function threadpoolStatus(): ThreadpoolStatus {
  if (!shim) {
    return { loaded: false, enabled: false, poolsCreated: 0, decodesWithPool: 0, decodes: 0, decodeMs: 0, adaptive: false, tokensByThreads: {}, threadSwitches: 0, adaptiveHolds: 0, unifiedContexts: 0, outputLimitedContexts: 0, library: "", problem: notLoadedReason };
  }
  const { resolved: _resolved, ...status } = shim.status();
  return { loaded: true, ...status };
}
