import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { LmrunError } from "../../errors.js";
import { PromptTooLongError, generateOnSequence, promptTokensOf } from "../generate.js";
import type { LoadedModel } from "../model.js";
import { setContextThreads } from "../threads.js";
import { BatchAligner } from "./batchAlignment.js";
import { abandonQueuedPrompt, dropUnrecordedCells } from "./promptAbandon.js";
import type { GenerateRequest, GenerationResult, TokenLogprob } from "../types.js";

/**
 * Many requests on ONE llama.cpp context: each of the context's sequences is a slot, and
 * node-llama-cpp decodes the tokens of every busy sequence in the same llama_decode batch
 * (a request that arrives joins at the next batch, between two tokens of the others).
 * This class only decides who runs where and when: generation itself is generate.ts's, the same
 * code `lmrun run` uses, so a request's text at temperature 0 is run's text.
 *
 * - A free slot is chosen by the longest prefix its cached tokens share with the new prompt (a chat
 *   client that re-sends the conversation evaluates only the new turn); without a useful prefix, the
 *   least recently used of the free slots that keep the busy ids consecutive (llama.cpp splits a
 *   batch into several passes when the active sequence ids are not), so that one client going
 *   back and forth between conversations or prompts finds each still cached in its own slot.
 * - When every slot is busy, requests wait in a bounded FIFO queue; past it QueueFullError.
 * - An aborted signal takes a request out of the queue, or stops its generation within a token.
 */

export interface ScheduleHooks {
  signal?: AbortSignal | undefined;
  onText?: ((text: string, logprobs?: TokenLogprob[]) => void) | undefined;
  onThought?: ((text: string) => void) | undefined;
  onCallArguments?: ((text: string) => void) | undefined;
  /** The request got a slot (it leaves the queue and starts evaluating its prompt). */
  /** A slot took the request: its prompt's tokens (before any truncation) and those its cache already holds. */
  onStart?: ((slot: number, prompt: { tokens: number; cached: number }) => void) | undefined;
}

export interface ScheduledResult extends GenerationResult {
  slot: number;
  /** Time spent waiting for a slot. */
  queueMs: number;
  cachedPromptTokens: number;
}

export interface SchedulerOptions {
  /** Requests allowed to wait when every slot is busy (0: none wait). */
  maxQueue: number;
}

/** Every slot busy and the queue full. */
export class QueueFullError extends LmrunError {
  constructor(readonly retryAfterSeconds: number) {
    super("every slot is busy and the queue is full", { hint: `Retry in ${retryAfterSeconds} s, or start the server with a larger --max-queue or --parallel` });
  }
}

/** The request's signal fired before it got a slot. */
/** Cancelled before its first token: while waiting for a slot, or while its prompt was evaluated. */
export class AbortedWhileQueuedError extends LmrunError {
  constructor(message = "the request was cancelled while waiting for a slot") {
    super(message);
  }
}

interface Slot {
  id: number;
  sequence: LlamaContextSequence;
  busy: boolean;
  /** When it was last taken (a count of takings; 0: never), for the least recently used choice. */
  lastTaken: number;
}

interface Waiter {
  tokens: readonly Token[];
  resolve(slot: Slot): void;
  reject(error: Error): void;
  cleanup(): void;
}

/** A prefix shorter than this share of the prompt (or than 2 tokens: BOS alone) is no reason to pick a slot. */
const MIN_PREFIX_SHARE = 0.1;

export class SlotScheduler {
  private readonly slots: Slot[];
  private readonly queue: Waiter[] = [];
  private promptPhases = 0;
  private takings = 0;
  private readonly aligner: BatchAligner | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Completed requests and their generated tokens, for a Retry-After estimate. */
  private recentRequestMs: number[] = [];

  constructor(
    readonly loaded: LoadedModel,
    private readonly options: SchedulerOptions,
  ) {
    this.slots = [];
    // A fresh context hands out sequence ids 0, 1, 2 ... in order: slot i is sequence i.
    const total = loaded.context.totalSequences;
    if (total > 1) {
      this.aligner = new BatchAligner(
        () => this.promptPhases > 0,
        () => this.severalBusy(),
      );
      this.aligner.manageQueue(loaded.context);
    }
    for (let i = 0; i < total; i++) {
      const sequence = loaded.context.getSequence();
      this.aligner?.align(sequence);
      this.slots.push({ id: i, sequence, busy: false, lastTaken: 0 });
    }
  }

  get parallel(): number {
    return this.slots.length;
  }

  get busySlots(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** No request running or waiting. */
  get idle(): boolean {
    return this.busySlots === 0 && this.queue.length === 0;
  }

  /** Resolves when the scheduler is idle. */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Generates one request on a free slot (waiting in the queue for one if need be). */
  async generate(request: GenerateRequest, hooks: ScheduleHooks = {}): Promise<ScheduledResult> {
    if (this.closed) throw new LmrunError("the model is being unloaded");
    if (hooks.signal?.aborted) throw new AbortedWhileQueuedError();
    const queuedAt = performance.now();
    const tokens = await promptTokensOf(this.loaded, request);
    // Refused before it waits for a slot (a server can still answer 400 then).
    const contextSize = this.loaded.context.contextSize;
    if (tokens.length >= contextSize && !request.truncate) {
      throw new PromptTooLongError(`the prompt is ${tokens.length} tokens but each slot's context holds ${contextSize}`, request.messages !== undefined ? "messages" : "prompt");
    }
    const slot = await this.acquire(tokens, hooks.signal);
    const queueMs = performance.now() - queuedAt;
    // What generation will keep of the slot's cache (its last prompt token is always evaluated again, for the logits).
    const cachedPromptTokens = slot.sequence.nextTokenIndex > 0 ? Math.max(0, Math.min(slot.sequence.compareContextTokens(tokens as Token[]).firstDifferentIndex, tokens.length - 1)) : 0;
    hooks.onStart?.(slot.id, { tokens: tokens.length, cached: cachedPromptTokens });
    let inPrompt = false;
    let generating = false;
    let promptAbandoned = false;
    // Gone while its prompt is evaluated: the prompt's remaining batches are dropped (promptAbandon.ts).
    const abandonPrompt = () => {
      if (!generating) promptAbandoned = abandonQueuedPrompt(slot.sequence, new AbortedWhileQueuedError("the request ended while its prompt was evaluated"));
    };
    hooks.signal?.addEventListener("abort", abandonPrompt, { once: true });
    const startedAt = performance.now();
    try {
      const result = await generateOnSequence(this.loaded, slot.sequence, request, {
        // Tokenised once: the slot choice's tokens are the prompt's.
        promptTokens: tokens,
        ...(hooks.signal ? { signal: hooks.signal } : {}),
        ...(hooks.onText ? { onText: hooks.onText } : {}),
        ...(hooks.onThought ? { onThought: hooks.onThought } : {}),
        ...(hooks.onCallArguments ? { onCallArguments: hooks.onCallArguments } : {}),
        threads: {
          prompt: () => {
            if (!inPrompt) this.promptPhases++;
            inPrompt = true;
            this.applyThreads();
          },
          generating: () => {
            generating = true;
            if (inPrompt) this.promptEnded();
            inPrompt = false;
            this.applyThreads();
          },
        },
      });
      this.recentRequestMs.push(performance.now() - startedAt);
      if (this.recentRequestMs.length > 20) this.recentRequestMs.shift();
      return { ...result, slot: slot.id, queueMs, cachedPromptTokens };
    } finally {
      hooks.signal?.removeEventListener("abort", abandonPrompt);
      if (promptAbandoned) dropUnrecordedCells(slot.sequence);
      if (inPrompt) this.promptEnded();
      this.applyThreads();
      this.release(slot);
    }
  }

  /** Seconds a client refused for a full queue should wait: about one request's time, at least 1. */
  retryAfterSeconds(): number {
    if (this.recentRequestMs.length === 0) return 1;
    const mean = this.recentRequestMs.reduce((a, b) => a + b, 0) / this.recentRequestMs.length;
    return Math.max(1, Math.ceil(mean / 1000));
  }

  /** Refuses new work and fails what waits; running requests go on (abort them through their signals). */
  close(): void {
    this.closed = true;
    for (const waiter of this.queue.splice(0)) {
      waiter.cleanup();
      waiter.reject(new LmrunError("the model is being unloaded"));
    }
    this.notifyIdle();
  }

  async dispose(): Promise<void> {
    this.close();
    for (const slot of this.slots) if (!slot.sequence.disposed) slot.sequence.dispose();
  }

  private acquire(tokens: readonly Token[], signal: AbortSignal | undefined): Promise<Slot> {
    const free = this.pickSlot(tokens);
    if (free !== undefined && this.queue.length === 0) {
      this.take(free);
      return Promise.resolve(free);
    }
    if (this.queue.length >= this.options.maxQueue) return Promise.reject(new QueueFullError(this.retryAfterSeconds()));
    return new Promise<Slot>((resolve, reject) => {
      const onAbort = () => {
        const at = this.queue.indexOf(waiter);
        if (at >= 0) this.queue.splice(at, 1);
        this.notifyIdle();
        reject(new AbortedWhileQueuedError());
      };
      const waiter: Waiter = {
        tokens,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private take(slot: Slot): void {
    slot.busy = true;
    slot.lastTaken = ++this.takings;
  }

  private release(slot: Slot): void {
    slot.busy = false;
    const next = this.queue[0];
    if (next !== undefined) {
      const chosen = this.pickSlot(next.tokens) ?? slot;
      this.queue.shift();
      next.cleanup();
      this.take(chosen);
      next.resolve(chosen);
      return;
    }
    this.notifyIdle();
  }

  /**
   * The free slot whose cache shares the longest useful prefix with `tokens`; else, among the free
   * slots next to the busy ones or in a gap between them (any free slot when none is busy), the least
   * recently taken, the lowest id first.
   */
  private pickSlot(tokens: readonly Token[]): Slot | undefined {
    let best: Slot | undefined;
    let bestPrefix = 0;
    let lowestBusy = Infinity;
    let highestBusy = -Infinity;
    let busyCount = 0;
    for (const slot of this.slots) {
      if (slot.busy) {
        lowestBusy = Math.min(lowestBusy, slot.id);
        highestBusy = Math.max(highestBusy, slot.id);
        busyCount++;
        continue;
      }
      const prefix = slot.sequence.nextTokenIndex > 0 ? slot.sequence.compareContextTokens(tokens as Token[]).firstDifferentIndex : 0;
      if (prefix > bestPrefix) {
        best = slot;
        bestPrefix = prefix;
      }
    }
    if (best !== undefined && bestPrefix >= 2 && bestPrefix >= tokens.length * MIN_PREFIX_SHARE) return best;
    // Next to the busy run, or in a gap of it: the busy ids stay (or become more) consecutive.
    const keepsPacked = (slot: Slot) => busyCount === 0 || (slot.id >= lowestBusy - 1 && slot.id <= highestBusy + 1);
    let chosen: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.busy || !keepsPacked(slot)) continue;
      if (chosen === undefined || slot.lastTaken < chosen.lastTaken) chosen = slot;
    }
    // Whenever a slot is free one qualifies: a free slot below the lowest busy id means the one right
    // below it is free too (likewise above the highest), and a free slot between them fills a gap.
    return chosen;
  }

  /** More than one busy slot (asked per token per sequence: stops at the second instead of counting). */
  private severalBusy(): boolean {
    let busy = 0;
    for (const slot of this.slots) if (slot.busy && ++busy > 1) return true;
    return false;
  }

  private promptEnded(): void {
    this.promptPhases--;
    if (this.promptPhases === 0) this.aligner?.startingEnded();
  }

  /** Batch threads while any slot evaluates a prompt, generation threads otherwise (as run's -tb / -t). */
  private applyThreads(): void {
    const { threads, batchThreads } = this.loaded.summary;
    setContextThreads(this.loaded.context, this.promptPhases > 0 ? batchThreads : threads);
  }

  private notifyIdle(): void {
    if (!this.idle) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
