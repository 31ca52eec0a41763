import type { LlamaContextSequence } from "node-llama-cpp";

/**
 * Stopping a request while its prompt is evaluated. node-llama-cpp's evaluate takes no signal: a
 * client that went away (or a --timeout) during a long prompt kept its slot busy until the whole
 * prompt was decoded (measured: 8.5 minutes for 27k tokens on 2 cores). Its context queues a prompt
 * as one decode request that it feeds to llama_decode a batch at a time; dropping what is still
 * queued lets the batch in progress finish and no other. The fields used are node-llama-cpp's
 * internals; without them this does nothing and the prompt runs to its end, as before.
 */

interface QueuedDecode {
  sequenceId: number;
}

interface ContextInternals {
  _queuedDecodes?: QueuedDecode[];
  _dispatchErrorForQueuedDecodesAndDequeue?: (decodes: Set<QueuedDecode>, error: unknown) => void;
  _ctx?: { removeTokenCellsFromSequence?: (sequenceId: number, start: number, end: number) => boolean };
}

function internalsOf(sequence: LlamaContextSequence): { context: ContextInternals; sequenceId: number } | undefined {
  const sequenceId = (sequence as unknown as { _sequenceId?: unknown })._sequenceId;
  const context = sequence.context as unknown as ContextInternals;
  if (typeof sequenceId !== "number" || !Array.isArray(context._queuedDecodes) || typeof context._dispatchErrorForQueuedDecodesAndDequeue !== "function") return undefined;
  return { context, sequenceId };
}

/** Fails the sequence's queued (not yet decoded) prompt tokens with `reason`; true if there were any. */
export function abandonQueuedPrompt(sequence: LlamaContextSequence, reason: Error): boolean {
  const found = internalsOf(sequence);
  if (!found) return false;
  const mine = new Set(found.context._queuedDecodes!.filter((decode) => decode.sequenceId === found.sequenceId));
  if (mine.size === 0) return false;
  found.context._dispatchErrorForQueuedDecodesAndDequeue!.call(found.context, mine, reason);
  return true;
}

/**
 * After an abandoned prompt, the KV cache holds the batches that were decoded, past what the
 * sequence records (it records a decode request only when all of it is done); a later request would
 * find cells where it writes. They are removed; the recorded prefix (the slot's cache) stays.
 */
export function dropUnrecordedCells(sequence: LlamaContextSequence): void {
  const found = internalsOf(sequence);
  if (!found || sequence.disposed) return;
  found.context._ctx?.removeTokenCellsFromSequence?.(found.sequenceId, sequence.nextTokenIndex, -1);
}
