import v8 from "node:v8";
import vm from "node:vm";
import { trimMalloc } from "./threadpool.js";

/**
 * Native memory node-llama-cpp leaves to the garbage collector, collected on a budget.
 *
 * Why: every generation makes a node-llama-cpp sampler whose native candidates buffer (n_vocab entries
 * of 12 bytes: 384 KB for a 32k vocabulary, 1.8 MB for Qwen3's 152k) is freed only when V8 collects the
 * sampler's JavaScript object. V8 does not see that memory, so it collects late: measured on `lmrun serve`
 * with the 135M test model, RSS grew from 248 to 299 MB over 60 requests (malloc's heap 5 -> 28 MB),
 * against 266 MB with a collection after each request. So the engine counts what each finished
 * generation left behind and, past a budget (8 MB: every ~21 requests on a 32k vocabulary, ~5 on a 152k
 * one), runs a full collection when nothing is generating, or regardless once the debt has grown to four
 * budgets (a server never idle). With it the same 60 requests end at 277 MB, malloc's heap at 14 MB.
 * Each collection is followed by malloc_trim, so the freed pages leave the process too (bench:serve's
 * memory section: 275-280 MB against 275-298 without).
 */
const BUDGET_BYTES = 8 * 1024 * 1024;
/** Bytes node-llama-cpp's sampler keeps per vocabulary entry (llama_token_data: id, logit, p). */
const CANDIDATE_BYTES = 12;

let debtBytes = 0;
let active = 0;
let collections = 0;
let collect: (() => void) | null | undefined;

/** V8's gc(), made available at run time (the flag is read when the function is asked for). */
function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as unknown;
    collect = typeof gc === "function" ? () => (gc as () => void)() : null;
  } catch {
    collect = null;
  }
  return collect;
}

function collectNow(): void {
  debtBytes = 0;
  const gc = collector();
  if (gc === null) return;
  gc();
  // What the collection freed sits in malloc's arenas (one per thread that allocated): give its pages back.
  trimMalloc();
  collections++;
}

/** A generation starts (its sampler is made now). */
export function generationStarted(): void {
  active++;
}

let scheduled = false;

/**
 * A generation ended; `vocabularySize` sizes what its sampler left for the collector. A collection
 * due runs on the next turn of the event loop, after the caller has sent its answer (~20 ms with a
 * 32 MB heap on 2 cores, measured).
 */
export function generationEnded(vocabularySize: number): void {
  active = Math.max(0, active - 1);
  debtBytes += vocabularySize * CANDIDATE_BYTES;
  if (scheduled || debtBytes < BUDGET_BYTES) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    if (debtBytes >= BUDGET_BYTES && (active === 0 || debtBytes >= 4 * BUDGET_BYTES)) collectNow();
  });
}

/** Full collections run so far (for tests). */
export function nativeMemoryCollections(): number {
  return collections;
}
