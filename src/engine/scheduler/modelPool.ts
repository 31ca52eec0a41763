import type { LlamaEmbeddingContext } from "node-llama-cpp";
import { LmrunError } from "../../errors.js";
import { PromptTooLongError } from "../generate.js";
import { InsufficientMemoryError, loadModel, type LoadedModel } from "../model.js";
import { PromptScorer } from "../promptLogprobs.js";
import type { GenerateRequest, LoadOptions, PromptTokenLogprob } from "../types.js";
import { AbortedWhileQueuedError, SlotScheduler } from "./slotScheduler.js";

/**
 * The models a server keeps loaded, each with its slot scheduler: loaded on first use (or at
 * start), unloaded after `keepAliveMs` without requests (ollama's keep_alive: -1 = never,
 * 0 = as soon as it is idle), and at most `maxModels` at once (the least recently used idle one
 * makes room; a model with requests in flight is never unloaded).
 *
 * It only ever loads the files it is given: which names a request may use is decided before
 * (src/server/modelNames.ts), never here.
 */

export interface ServableModel {
  /** The name clients use (and /api/ps shows). */
  name: string;
  path: string;
}

export interface PoolOptions {
  /** Load options for a model file (sequences = the slots). */
  loadOptionsFor(modelPath: string): LoadOptions;
  maxQueue: number;
  /** Default keep-alive in ms; negative = forever. */
  keepAliveMs: number;
  maxModels: number;
  /** Unload notices and similar (the server's log). */
  onEvent?: ((event: PoolEvent) => void) | undefined;
}

export type PoolEvent =
  | { type: "loaded"; name: string; ms: number }
  | { type: "unloaded"; name: string; reason: "keep-alive" | "evicted" | "requested" | "shutdown" }
  | { type: "failed"; name: string; message: string };

export interface PoolEntry {
  readonly name: string;
  readonly path: string;
  readonly loaded: LoadedModel;
  readonly scheduler: SlotScheduler;
  readonly loadedAt: number;
  /** Requests holding the model (running or queued). */
  active: number;
  lastUsed: number;
  keepAliveMs: number;
  /** When the idle model will be unloaded (ms since epoch); undefined while busy or kept forever. */
  expiresAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
  embedding: Promise<LlamaEmbeddingContext> | undefined;
  /** Embeddings and prompt scoring running beside the slots (an unload waits for them, as for generations). */
  sideWorkInFlight: Set<Promise<unknown>>;
  /** Prompt log-probabilities' own context (promptLogprobs.ts), made on first use. */
  scorer: PromptScorer | undefined;
}

/** Every loaded model is busy and --max-models allows no more. */
export class PoolFullError extends LmrunError {
  constructor(maxModels: number) {
    super(`${maxModels} model${maxModels === 1 ? " is" : "s are"} loaded (--max-models) and all have requests in flight`, {
      hint: "Retry when one is idle, or start the server with a larger --max-models",
    });
  }
}

export class ModelPool {
  private readonly entries = new Map<string, PoolEntry>();
  private readonly loading = new Map<string, Promise<PoolEntry>>();
  private closed = false;

  constructor(private readonly options: PoolOptions) {}

  list(): PoolEntry[] {
    return [...this.entries.values()];
  }

  /** How many requests a model serves at once (its slots), loaded or not. */
  slotsOf(model: ServableModel): number {
    return this.entries.get(model.path)?.scheduler.parallel ?? this.options.loadOptionsFor(model.path).sequences ?? 1;
  }

  get(path: string): PoolEntry | undefined {
    return this.entries.get(path);
  }

  /**
   * The model, loaded if need be, held for one request until release(). loadMs is the time this
   * call spent loading (0 when it was warm).
   */
  async acquire(model: ServableModel, signal?: AbortSignal): Promise<{ entry: PoolEntry; loadMs: number }> {
    if (this.closed) throw new LmrunError("the server is shutting down");
    const warm = this.entries.get(model.path);
    if (warm) {
      this.hold(warm);
      return { entry: warm, loadMs: 0 };
    }
    const startedAt = performance.now();
    let pending = this.loading.get(model.path);
    if (pending === undefined) {
      pending = this.load(model, signal);
      this.loading.set(model.path, pending);
      pending.finally(() => this.loading.delete(model.path)).catch(() => {});
      // The request that asked gets the error; the server's log gets it too (e.g. an RPC worker that is busy).
      pending.catch((error: unknown) => {
        // A full pool is a busy server (503 in the access log), not a model that failed to load.
        if (!signal?.aborted && !(error instanceof PoolFullError)) this.options.onEvent?.({ type: "failed", name: model.name, message: error instanceof Error ? error.message : String(error) });
      });
    }
    const entry = await pending;
    this.hold(entry);
    return { entry, loadMs: performance.now() - startedAt };
  }

  /** Ends a request's hold; `keepAliveMs` (the request's keep_alive) replaces the model's. */
  release(entry: PoolEntry, keepAliveMs?: number): void {
    entry.active = Math.max(0, entry.active - 1);
    entry.lastUsed = Date.now();
    if (keepAliveMs !== undefined) entry.keepAliveMs = keepAliveMs;
    if (entry.active === 0) this.armTimer(entry);
  }

  /** Loads a model at start (models named on the command line), counted as not in use. */
  async preload(model: ServableModel): Promise<PoolEntry> {
    const { entry } = await this.acquire(model);
    this.release(entry);
    return entry;
  }

  /** Unloads a model now (ollama's keep_alive: 0 without a prompt), after its requests finish. */
  async unload(path: string, reason: "requested" | "shutdown" = "requested"): Promise<boolean> {
    const entry = this.entries.get(path);
    if (!entry) return false;
    await this.dispose(entry, reason);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.loading.values()]);
    await Promise.all([...this.entries.values()].map((entry) => this.dispose(entry, "shutdown")));
  }

  /**
   * Embeddings of texts, one after another, on the model's embedding context (created on first use,
   * beside the slots' context; node-llama-cpp evaluates one input at a time there).
   */
  async embed(entry: PoolEntry, texts: string[], options: { truncate?: boolean; signal?: AbortSignal } = {}): Promise<{ vectors: number[][]; promptTokens: number }> {
    if (this.entries.get(entry.path) !== entry) throw new LmrunError("the model is being unloaded");
    const work = this.embedTexts(entry, texts, options);
    entry.sideWorkInFlight.add(work);
    try {
      return await work;
    } finally {
      entry.sideWorkInFlight.delete(work);
    }
  }

  /** A plain completion's own prompt tokens' log-probabilities (see PromptScorer), one request at a time. */
  async scorePrompt(entry: PoolEntry, request: GenerateRequest, top: number, signal?: AbortSignal): Promise<PromptTokenLogprob[]> {
    if (this.entries.get(entry.path) !== entry) throw new LmrunError("the model is being unloaded");
    entry.scorer ??= new PromptScorer(entry.loaded);
    const work = entry.scorer.score(request, top, signal);
    entry.sideWorkInFlight.add(work);
    try {
      return await work;
    } finally {
      entry.sideWorkInFlight.delete(work);
    }
  }

  private async embedTexts(entry: PoolEntry, texts: string[], options: { truncate?: boolean; signal?: AbortSignal }): Promise<{ vectors: number[][]; promptTokens: number }> {
    const contextSize = entry.loaded.context.contextSize;
    entry.embedding ??= entry.loaded.model.createEmbeddingContext({ contextSize, threads: entry.loaded.summary.batchThreads });
    const context = await entry.embedding;
    const { model } = entry.loaded;
    // node-llama-cpp adds a BOS and, for some vocabularies, an end token to what it is given, and
    // wants one position spare.
    const room = contextSize - 3;
    const vectors: number[][] = [];
    let promptTokens = 0;
    for (const [index, text] of texts.entries()) {
      // Between inputs: a client that left, a --timeout or a shutdown ends the request (2048 long inputs take minutes).
      if (options.signal?.aborted) throw new AbortedWhileQueuedError(`the request ended after ${index} of ${texts.length} inputs`);
      let tokens = model.tokenize(text);
      if (tokens.length > room) {
        if (!options.truncate) throw new PromptTooLongError(`input ${index} is ${tokens.length} tokens; the embedding context holds ${contextSize}`, "input");
        // ollama's truncate: the start of the text, as much as fits.
        tokens = tokens.slice(0, room);
      }
      promptTokens += tokens.length;
      vectors.push([...(await context.getEmbeddingFor(tokens)).vector]);
    }
    return { vectors, promptTokens };
  }

  private hold(entry: PoolEntry): void {
    entry.active++;
    entry.lastUsed = Date.now();
    entry.expiresAt = undefined;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
  }

  private armTimer(entry: PoolEntry): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.keepAliveMs < 0) {
      entry.expiresAt = undefined;
      return;
    }
    entry.expiresAt = Date.now() + entry.keepAliveMs;
    // Timers past ~24.8 days overflow; such a keep-alive is forever in practice.
    if (entry.keepAliveMs > 2 ** 31 - 1) return;
    entry.timer = setTimeout(() => {
      if (entry.active === 0) void this.dispose(entry, "keep-alive");
    }, entry.keepAliveMs);
    entry.timer.unref();
  }

  private async load(model: ServableModel, signal?: AbortSignal): Promise<PoolEntry> {
    await this.makeRoom(model.path);
    const startedAt = performance.now();
    let loaded: LoadedModel;
    try {
      loaded = await loadModel(model.path, { ...this.options.loadOptionsFor(model.path), ...(signal ? { signal } : {}) });
    } catch (error) {
      // Idle models may be what fills the memory: unload them all and try once more.
      if (!(error instanceof InsufficientMemoryError) || !this.list().some((e) => e.active === 0)) throw error;
      await Promise.all(this.list().filter((e) => e.active === 0).map((e) => this.dispose(e, "evicted")));
      loaded = await loadModel(model.path, { ...this.options.loadOptionsFor(model.path), ...(signal ? { signal } : {}) });
    }
    if (this.closed) {
      await loaded.dispose();
      throw new LmrunError("the server is shutting down");
    }
    const entry: PoolEntry = {
      name: model.name,
      path: model.path,
      loaded,
      scheduler: new SlotScheduler(loaded, { maxQueue: this.options.maxQueue }),
      loadedAt: Date.now(),
      active: 0,
      lastUsed: Date.now(),
      keepAliveMs: this.options.keepAliveMs,
      expiresAt: undefined,
      timer: undefined,
      embedding: undefined,
      sideWorkInFlight: new Set(),
      scorer: undefined,
    };
    this.entries.set(model.path, entry);
    this.options.onEvent?.({ type: "loaded", name: model.name, ms: performance.now() - startedAt });
    return entry;
  }

  /** Unloads least recently used idle models until one more fits under --max-models. */
  private async makeRoom(loadingPath: string): Promise<void> {
    const othersLoading = () => [...this.loading.keys()].filter((p) => p !== loadingPath).length;
    while (this.entries.size + othersLoading() >= this.options.maxModels) {
      const idle = this.list()
        .filter((e) => e.active === 0)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (idle === undefined) throw new PoolFullError(this.options.maxModels);
      await this.dispose(idle, "evicted");
    }
  }

  private async dispose(entry: PoolEntry, reason: Extract<PoolEvent, { type: "unloaded" }>["reason"]): Promise<void> {
    if (this.entries.get(entry.path) !== entry) return;
    this.entries.delete(entry.path);
    if (entry.timer) clearTimeout(entry.timer);
    entry.scheduler.close();
    await entry.scheduler.whenIdle();
    await Promise.allSettled([...entry.sideWorkInFlight]);
    const embedding = await entry.embedding?.catch(() => undefined);
    await embedding?.dispose();
    await entry.scorer?.dispose();
    await entry.scheduler.dispose();
    await entry.loaded.dispose();
    this.options.onEvent?.({ type: "unloaded", name: entry.name, reason });
  }
}
