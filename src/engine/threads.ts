import type { LlamaContext } from "node-llama-cpp";

/**
 * Changes the threads a context uses for its next decode.
 *
 * Why: prompts and generation get separate thread counts, as llama.cpp's -t / -tb do. A big prompt
 * batch is enough work for every core; a single token may not be (tiny models, or the binding's
 * per-decode threads when lmrun's threadpool shim is missing, see native/threadpool.c), so
 * generation uses -t. node-llama-cpp fixes a context's threads at creation; the fields below are
 * its internals, so this degrades to a no-op if they ever disappear.
 */
export function setContextThreads(context: LlamaContext, threads: number): void {
  const internals = context as unknown as {
    _idealThreads?: number;
    _minThreads?: number;
    _freeReservedThreads?: () => void;
  };
  if (typeof internals._idealThreads !== "number" || typeof internals._freeReservedThreads !== "function") return;
  if (internals._idealThreads === threads) return;
  internals._idealThreads = threads;
  internals._minThreads = threads;
  // The reservation holds the old count; dropping it makes the next decode reserve the new one.
  internals._freeReservedThreads.call(context);
}
