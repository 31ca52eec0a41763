import type { LlamaContext } from "node-llama-cpp";

/**
 * Changes the threads a context uses for its next decode.
 *
 * Why: the prebuilt binding runs every llama_decode on a fresh, disposable ggml threadpool
 * (it never attaches a persistent one, unlike llama-bench). For a big prompt batch the
 * thread start-up is noise and extra threads pay off; for single-token generation on a
 * machine with few cores the freshly started thread often lands on a busy core and every
 * barrier in the graph waits for it, which made 2-thread generation 2-3x slower than
 * 1-thread here. So prompts and generation get separate thread counts, as llama.cpp's
 * -t / -tb do. node-llama-cpp fixes a context's threads at creation; the fields below are
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
