import type { LlamaContext, LlamaContextSequence } from "node-llama-cpp";
import { loadNodeLlamaCpp } from "../nodeLlamaCpp.js";

// node-llama-cpp's locks live in its own copy of lifecycle-utils (a module-level map): asking about them
// needs that very module instance, not whichever copy another package would resolve.
const { isLockActive, waitForLockRelease } = await loadNodeLlamaCpp();

/**
 * Keeps the sequences that generate together in the same llama_decode batch, without starving a
 * request that is starting.
 *
 * Why: node-llama-cpp's batch loop (holding the context's lock) decodes, samples each sequence's
 * token, hands the tokens back, and at once takes whatever next tokens are queued. The sequences
 * queue theirs through a chain of promise callbacks, and the last one sampled is still in that chain
 * when the loop looks: with 4 sequences every batch held 3 tokens and one sequence trailed by a batch
 * (measured: 84 decodes of 3 tokens instead of 63 of 4 for 4 x 64 tokens). The loop awaits each
 * sequence's after-batch hook, so `align` makes that hook wait one event-loop turn (shared by every
 * sequence), letting every sequence queue its next token first.
 *
 * A full queue keeps the loop (and the lock) going, and a request starting on a slot needs that lock
 * to drop the slot's cached tokens past the shared prefix: it would wait until every other request
 * finished. So while `starting()` is true the hook does not wait, and tokens queued while the loop
 * holds the lock wait for its release: the loop runs out of work, ends, the starting request takes
 * the lock, and then every sequence (the new one's prompt included) joins the next batch.
 * llama.cpp decodes a batch in one pass only when its sequences come in ascending, consecutive ids
 * (with a KV cache per sequence, each pass takes a run of them): the queue is kept in id order, as
 * the sequences queue in whatever order their tokens were sampled (measured: 4-token batches took
 * 18.7 ms out of order against 13.2 ms in order).
 * The hook, the queueing method and the lock's name ([context, "context"] in node-llama-cpp's copy of
 * lifecycle-utils) are node-llama-cpp internals (3.x); where the methods are missing nothing is
 * changed, and test/server/concurrency.test.ts counts the decodes.
 */
export class BatchAligner {
  /**
   * @param starting a request has a slot but no first token yet (it may need the context's lock)
   * @param together more than one request holds a slot (one alone has nobody to wait for)
   */
  constructor(
    private readonly starting: () => boolean,
    private readonly together: () => boolean,
  ) {}

  align(sequence: LlamaContextSequence): void {
    const internals = sequence as unknown as { _takeIntervalCheckpointIfNeededAfterBatch?: (stateLength: number) => unknown };
    const original = internals._takeIntervalCheckpointIfNeededAfterBatch;
    if (typeof original !== "function") return;
    internals._takeIntervalCheckpointIfNeededAfterBatch = (stateLength: number) => {
      const result = original(stateLength);
      if (this.starting() || !this.together()) return result;
      const turn = nextTurn();
      return result instanceof Promise ? result.then(() => turn) : turn;
    };
  }

  /** Orders the context's queued tokens by sequence id, and holds them back while a request starts (see above). */
  manageQueue(context: LlamaContext): void {
    const internals = context as unknown as { _decodeTokens?: (...args: unknown[]) => Promise<unknown>; _queuedDecodes?: Array<{ sequenceId: number }> };
    const original = internals._decodeTokens;
    if (typeof original !== "function") return;
    const lock = [context, "context"] as const;
    internals._decodeTokens = (...args: unknown[]) => {
      const enqueue = () => {
        // The push happens synchronously inside the call; the promise settles after the decode.
        const decoded = original.apply(context, args);
        internals._queuedDecodes?.sort((a, b) => a.sequenceId - b.sequenceId);
        return decoded;
      };
      if (!this.starting() || !isLockActive(lock)) return enqueue();
      return new Promise<void>((resolve) => {
        this.held.push(resolve);
        void waitForLockRelease(lock).then(() => this.releaseHeld());
      }).then(enqueue);
    };
  }

  /** Call when no request is starting any more: tokens held back join the running loop at once. */
  startingEnded(): void {
    this.releaseHeld();
  }

  private held: Array<() => void> = [];

  private releaseHeld(): void {
    for (const resolve of this.held.splice(0)) resolve();
  }
}

let pendingTurn: Promise<void> | undefined;

/** One setImmediate shared by every caller until it fires. */
function nextTurn(): Promise<void> {
  pendingTurn ??= new Promise<void>((resolve) =>
    setImmediate(() => {
      pendingTurn = undefined;
      resolve();
    }),
  );
  return pendingTurn;
}
