import type { LlamaContext, LlamaContextSequence, LlamaModel } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { backendUnavailable, getSharedLlama } from "./llama.js";
import { checkModelFileHeader, KV_TYPE_NAMES } from "./modelFile.js";
import { vocabularySize } from "./vocabulary.js";
import { syncDecoder, type SyncDecoder } from "./threadpool.js";
import type { GpuChoice } from "./types.js";

/**
 * llama-bench's measurement loop on node-llama-cpp (tools/llama-bench/llama-bench.cpp: test_prompt, test_gen).
 *
 * The "direct" path talks to the context's native addon object (initBatch / addToBatch / decodeBatch):
 * one native decode per llama_decode that llama-bench makes, with no sampling and no JS batching queue,
 * because per-token overhead of the binding is what separates us from llama-bench on tiny models.
 * Those methods are node-llama-cpp internals, so the public sequence API is the fallback
 * (LMRUN_BENCH_DECODE=public forces it, for comparison).
 *
 * Generation goes further where lmrun's native shim is loaded ("sync" path): after a context's first
 * token through the binding, each token is one synchronous llama_decode + llama_synchronize on this
 * thread, exactly llama-bench's test_gen loop, without the binding's asynchronous call per token
 * (~0.1 ms here, a quarter of a tiny model's token). LMRUN_BENCH_DECODE=direct keeps the binding;
 * OpenMP builds of llama.cpp keep it too (see createContext below).
 */

export interface BenchModelHandle {
  readonly modelType: string;
  readonly modelSize: number;
  readonly modelNParams: number;
  readonly nVocab: number;
  readonly addBos: boolean;
  readonly bosToken: number | null;
  createContext(options: BenchContextOptions): Promise<BenchContextHandle>;
  dispose(): Promise<void>;
}

export interface BenchContextOptions {
  contextSize: number;
  nBatch: number;
  nUbatch: number;
  threads: number;
  flashAttn: -1 | 0 | 1;
  typeK: string;
  typeV: string;
  signal?: AbortSignal;
}

export type DecodePath = "direct" | "public" | "sync";

export interface BenchContextHandle {
  /** How tokens reached llama_decode in the last test: the binding's addon (direct), its public API, or the shim (sync). */
  readonly decodePath: DecodePath;
  /** llama_memory_clear: forget every token. */
  clear(): Promise<void>;
  /** test_prompt: n random tokens (BOS first when the model adds one) decoded in n_batch chunks. */
  prompt(nTokens: number, nBatch: number): Promise<void>;
  /** test_gen: n single-token decodes, no sampling. */
  generate(nTokens: number): Promise<void>;
  dispose(): Promise<void>;
}

/** The native methods the direct path needs; checked at runtime because they are not public API. */
interface AddonContextLike {
  initBatch(size: number): void;
  addToBatch(sequenceId: number, firstTokenSequenceIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
  decodeBatch(): Promise<void>;
  disposeSequence(sequenceId: number): void;
}

function directAddon(context: LlamaContext): AddonContextLike | undefined {
  const addon = (context as unknown as { _ctx?: Partial<AddonContextLike> })._ctx;
  if (
    addon &&
    typeof addon.initBatch === "function" &&
    typeof addon.addToBatch === "function" &&
    typeof addon.decodeBatch === "function" &&
    typeof addon.disposeSequence === "function"
  ) {
    return addon as AddonContextLike;
  }
  return undefined;
}

/** std::rand() stand-in: a small LCG, deterministic per context so runs are repeatable. */
function randomTokens(nVocab: number, seed = 1): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 1) % nVocab;
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const error = new Error("aborted");
    error.name = "AbortError";
    throw error;
  }
}


/** Logits for the batch's one token, as llama_batch_get_one asks for the last token's. */
const OUTPUT_OF_FIRST_TOKEN = Uint32Array.of(0);

class DirectContext implements BenchContextHandle {
  decodePath: DecodePath = "direct";
  /** This context was claimed for synchronous decodes (see generate). */
  private claimed = false;
  private nextPosition = 0;
  private readonly nextRandom: () => number;
  constructor(
    private readonly context: LlamaContext,
    private readonly addon: AddonContextLike,
    private readonly model: BenchModelHandle,
    private readonly ubatch: number,
    private readonly signal: AbortSignal | undefined,
    private readonly sync: SyncDecoder | undefined,
  ) {
    this.nextRandom = randomTokens(model.nVocab);
  }

  async clear(): Promise<void> {
    this.addon.disposeSequence(0);
    this.nextPosition = 0;
  }

  private firstToken(): number {
    return this.model.addBos && this.model.bosToken !== null ? this.model.bosToken : this.nextRandom();
  }

  async prompt(nTokens: number, nBatch: number): Promise<void> {
    // The tokens are drawn before the clock matters to the caller only as much as llama-bench's own rand() calls do.
    let processed = 0;
    while (processed < nTokens) {
      const chunk = Math.min(nTokens - processed, nBatch);
      const tokens = new Uint32Array(chunk);
      tokens[0] = processed === 0 ? this.firstToken() : this.nextRandom();
      for (let i = 1; i < chunk; i++) tokens[i] = this.nextRandom();
      // llama_decode splits an n_batch chunk into n_ubatch pieces; node-llama-cpp's context has n_batch = n_ubatch,
      // so we hand it the pieces ourselves. Only the chunk's last token asks for logits, as llama_batch_get_one does.
      for (let offset = 0; offset < chunk; offset += this.ubatch) {
        throwIfAborted(this.signal);
        const piece = tokens.subarray(offset, Math.min(chunk, offset + this.ubatch));
        const isLast = offset + piece.length === chunk;
        this.addon.initBatch(piece.length);
        this.addon.addToBatch(0, this.nextPosition, piece, isLast ? Uint32Array.of(piece.length - 1) : new Uint32Array(0));
        await this.addon.decodeBatch();
        this.nextPosition += piece.length;
      }
      processed += chunk;
    }
  }

  async generate(nTokens: number): Promise<void> {
    const signal = this.signal;
    const sync = this.sync;
    let token = this.firstToken();
    let i = 0;
    if (!this.claimed && nTokens > 0) {
      // The context's first generated token goes through the binding, which names the context to claim.
      throwIfAborted(signal);
      await this.decodeThroughBinding(token);
      token = this.nextRandom();
      i = 1;
      this.claimed = sync?.claimLastContext() === true;
      if (sync && this.claimed && i >= nTokens) {
        // The warm-up's one token: also decode one synchronously, so that the first synchronous decode
        // (its threadpool changes calling thread; ~10 ms once, measured) lands here and not in a timed
        // repetition. Repetitions clear the sequence first.
        if (sync.decodeToken(token) !== 0) throw new Error("llama_decode failed during the warm-up");
        this.nextPosition++;
      }
    }
    if (!sync || !this.claimed) {
      for (; i < nTokens; i++) {
        if (signal?.aborted) throwIfAborted(signal);
        await this.decodeThroughBinding(token);
        token = this.nextRandom();
      }
      return;
    }
    // Claimed (one context at a time in a bench): every token is synchronous, and llama_batch_get_one
    // continues from the sequence's last position (0 after clear()), as llama-bench's test_gen does.
    this.decodePath = "sync";
    // Synchronous decodes block the event loop: give it a turn every 50 ms so Ctrl-C still lands.
    let yieldAt = performance.now() + 50;
    for (; i < nTokens; i++) {
      const status = sync.decodeToken(token);
      if (status !== 0) throw new Error(`llama_decode failed during generation (status ${status})`);
      this.nextPosition++;
      token = this.nextRandom();
      if (performance.now() >= yieldAt) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        throwIfAborted(signal);
        yieldAt = performance.now() + 50;
      }
    }
  }

  /** One token at the next position through the binding's addon: one asynchronous native call. */
  private async decodeThroughBinding(token: number): Promise<void> {
    this.addon.initBatch(1);
    this.addon.addToBatch(0, this.nextPosition++, Uint32Array.of(token), OUTPUT_OF_FIRST_TOKEN);
    await this.addon.decodeBatch();
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
  }
}

class PublicContext implements BenchContextHandle {
  readonly decodePath = "public" as const;
  private readonly nextRandom: () => number;
  constructor(
    private readonly context: LlamaContext,
    private readonly sequence: LlamaContextSequence,
    private readonly model: BenchModelHandle,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.nextRandom = randomTokens(model.nVocab);
  }

  async clear(): Promise<void> {
    await this.sequence.clearHistory();
  }

  private firstToken(): number {
    return this.model.addBos && this.model.bosToken !== null ? this.model.bosToken : this.nextRandom();
  }

  async prompt(nTokens: number, nBatch: number): Promise<void> {
    let processed = 0;
    while (processed < nTokens) {
      throwIfAborted(this.signal);
      const chunk = Math.min(nTokens - processed, nBatch);
      const tokens: number[] = [processed === 0 ? this.firstToken() : this.nextRandom()];
      for (let i = 1; i < chunk; i++) tokens.push(this.nextRandom());
      await this.sequence.evaluateWithoutGeneratingNewTokens(tokens as never);
      processed += chunk;
    }
  }

  async generate(nTokens: number): Promise<void> {
    let token = this.firstToken();
    // Ask for one logit of the token's output, so the output layer runs as it does for llama-bench's
    // llama_batch_get_one (evaluateWithoutGeneratingNewTokens would skip it: ~13% less work on a 135M model).
    const wantOutput = { generateNext: { logits: { filter: { tokens: [0] } } } };
    for (let i = 0; i < nTokens; i++) {
      throwIfAborted(this.signal);
      await this.sequence.controlledEvaluate([[token, wantOutput]] as never);
      token = this.nextRandom();
    }
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
  }
}

export async function openBenchModel(
  modelPath: string,
  /** rpc: the workers were registered already (connectRpcWorkers), with the RPC engine build as the shared binding. */
  options: { gpu: GpuChoice; gpuLayers: number; signal?: AbortSignal; rpc?: boolean },
): Promise<BenchModelHandle> {
  await checkModelFileHeader(modelPath);
  const llama = await getSharedLlama(options.gpu).catch((error: unknown) => {
    throw backendUnavailable(options.gpu, error);
  });
  const offload = options.rpc === true || llama.gpu !== false;
  const openMpBuild = /OPENMP = 1/.test(llama.systemInfo);
  let model: LlamaModel;
  try {
    model = await llama.loadModel({
      modelPath,
      // llama-bench's -ngl -1 means every layer.
      gpuLayers: !offload ? 0 : options.gpuLayers < 0 ? "max" : options.gpuLayers,
      ...(options.rpc === true ? { ignoreMemorySafetyChecks: true } : {}),
      ...(options.signal ? { loadSignal: options.signal } : {}),
    });
  } catch (error) {
    throw new LmrunError(`failed to load ${modelPath}: ${(error as Error).message}`, { cause: error });
  }
  const native = (model as unknown as { _model?: { getTotalParameters?: () => number } })._model;
  const nParams = typeof native?.getTotalParameters === "function" ? native.getTotalParameters() : model.fileInsights.totalParameters;
  const handle: BenchModelHandle = {
    modelType: String(model.typeDescription),
    modelSize: model.size,
    modelNParams: nParams,
    nVocab: vocabularySize(model, 32000),
    addBos: model.tokens.shouldPrependBosToken,
    bosToken: model.tokens.bos ?? null,
    async createContext(ctxOptions) {
      const ubatch = Math.min(ctxOptions.nBatch, ctxOptions.nUbatch);
      let context: LlamaContext;
      try {
        context = await model.createContext({
          contextSize: ctxOptions.contextSize,
          batchSize: ubatch,
          sequences: 1,
          threads: { ideal: ctxOptions.threads, min: ctxOptions.threads },
          flashAttention: ctxOptions.flashAttn === -1 ? "auto" : ctxOptions.flashAttn === 1,
          experimentalKvCacheKeyType: (KV_TYPE_NAMES[ctxOptions.typeK] ?? "F16") as never,
          experimentalKvCacheValueType: (KV_TYPE_NAMES[ctxOptions.typeV] ?? "F16") as never,
          ignoreMemorySafetyChecks: true,
          failedCreationRemedy: false,
          ...(ctxOptions.signal ? { createSignal: ctxOptions.signal } : {}),
        });
      } catch (error) {
        throw new LmrunError(`failed to create a ${ctxOptions.contextSize}-token context: ${(error as Error).message}`, { cause: error });
      }
      const mode = process.env.LMRUN_BENCH_DECODE;
      const addon = mode === "public" ? undefined : directAddon(context);
      // An OpenMP build (a local `node-llama-cpp source build`) keeps one OpenMP team per calling thread:
      // decoding from this thread as well as the binding's would run two teams on the same cores
      // (measured: 2-thread tg of the tiny model 550 t/s instead of ~4,000). Those stay on the binding.
      const sync = mode === "direct" || openMpBuild ? undefined : syncDecoder();
      if (addon) return new DirectContext(context, addon, handle, ubatch, ctxOptions.signal, sync);
      return new PublicContext(context, context.getSequence(), handle, ctxOptions.signal);
    },
    async dispose() {
      await model.dispose();
    },
  };
  return handle;
}

/** Memory the GPU reports as used, or null without a GPU backend. */
export async function usedVramBytes(gpu: GpuChoice): Promise<number | null> {
  const llama = await getSharedLlama(gpu);
  if (llama.gpu === false) return null;
  const state = await llama.getVramState();
  return state.used;
}
