import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Llama, LlamaContext, LlamaModel } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { formatBytes } from "../io/format.js";
import { backendUnavailable, clearRecentLlamaLogs, getSharedLlama, recentLlamaLogs } from "./llama.js";
import { checkCacheTypes, checkModelFileHeader, KV_TYPE_NAMES, readModelHeader } from "./modelFile.js";
import { limitOutputs, releaseFilePages, requestUnifiedKvCache, setAdaptiveThreads, threadpoolStatus } from "./threadpool.js";
import type { LoadOptions, ModelSummary, RpcLoadOptions } from "./types.js";

/** Default context when the user gives none: the training context, capped, as ollama does. */
export const DEFAULT_CONTEXT_CAP = 4096;

/** The model (with its context) would not fit in the memory allowed: refused before loading anything. */
export class InsufficientMemoryError extends LmrunError {
  constructor(
    message: string,
    readonly neededBytes: number,
    readonly availableBytes: number,
  ) {
    super(message, { hint: "Use a smaller quantisation or model, or a smaller --ctx" });
  }
}

/** A model loaded with one context and one sequence, ready for generation. */
export class LoadedModel {
  constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly summary: ModelSummary,
    /** The context's sequences share one KV cache (LoadOptions.unifiedKvCache was asked and granted). */
    readonly kvUnified = false,
  ) {}

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}

export async function loadModel(modelPath: string, options: LoadOptions): Promise<LoadedModel> {
  const { sizeBytes } = await checkModelFileHeader(modelPath);
  let llama: Llama;
  let rpc: Awaited<ReturnType<typeof connectRpcWorkers>> | undefined;
  if (options.rpc) {
    rpc = await connectRpcWorkers(options.gpu, options.rpc, options.signal);
    llama = rpc.llama;
  } else {
    try {
      llama = await getSharedLlama(options.gpu);
    } catch (error) {
      throw backendUnavailable(options.gpu, error);
    }
  }
  const { fileInfo, insights } = await readModelHeader(modelPath, sizeBytes, llama);
  if (!insights.isSupportedByLlamaCpp) {
    throw new LmrunError(
      `${path.basename(modelPath)} uses architecture "${fileInfo.metadata?.general?.architecture ?? "unknown"}", which this llama.cpp does not support`,
    );
  }

  checkCacheTypes(fileInfo.metadata, path.basename(modelPath), { k: options.cacheTypeK !== undefined ? [options.cacheTypeK] : [], v: options.cacheTypeV !== undefined ? [options.cacheTypeV] : [] });
  const trainContextSize = insights.trainContextSize ?? 2048;
  const contextSize = options.contextSize ?? Math.min(trainContextSize, DEFAULT_CONTEXT_CAP);
  // With RPC workers the layers go to them (llama.cpp's -ngl 99), even on a build without a local GPU.
  const cpuOnly = rpc === undefined && (options.gpu === "cpu" || llama.gpu === false);
  const gpuLayers = rpc !== undefined && options.gpuLayers === "auto" ? "max" : options.gpuLayers;
  const estimateLayers = cpuOnly ? 0 : gpuLayers === "max" ? insights.totalLayers : typeof gpuLayers === "number" ? Math.min(gpuLayers, insights.totalLayers) : 0;
  const modelNeeds = insights.estimateModelResourceRequirements({ gpuLayers: estimateLayers, useMmap: false });
  const contextNeeds = insights.estimateContextResourceRequirements({
    contextSize,
    modelGpuLayers: estimateLayers,
    batchSize: options.batchSize ?? Math.min(512, contextSize),
    // Each sequence has its own contextSize cells (node-llama-cpp never shares the KV cache between them).
    ...(options.sequences !== undefined ? { sequences: options.sequences } : {}),
  });
  const ramNeeded = modelNeeds.cpuRam + contextNeeds.cpuRam;
  const ramAvailable = options.maxRamBytes ?? os.freemem();
  if (ramNeeded > ramAvailable) {
    throw new InsufficientMemoryError(
      `${path.basename(modelPath)} needs about ${formatBytes(ramNeeded)} of RAM with a ${contextSize}-token context${(options.sequences ?? 1) > 1 ? ` for each of ${options.sequences} sequences` : ""}, but only ${formatBytes(ramAvailable)} is ${options.maxRamBytes !== undefined ? "allowed (--max-ram)" : "available"}`,
      ramNeeded,
      ramAvailable,
    );
  }
  if (rpc !== undefined && llama.gpu === false) {
    // The offloaded layers and their part of the context live on the workers: count their memory.
    const workerNeeds = modelNeeds.gpuVram + contextNeeds.gpuVram;
    const workerFree = rpc.devices.reduce((sum, device) => sum + device.freeBytes, 0);
    if (workerNeeds > workerFree) {
      throw new LmrunError(
        `${path.basename(modelPath)} needs about ${formatBytes(workerNeeds)} on the RPC workers for ${estimateLayers} layers with a ${contextSize}-token context, but they have ${formatBytes(workerFree)} free`,
        { hint: "Add workers, keep some layers here with --gpu-layers N, or use a smaller --ctx" },
      );
    }
  }

  clearRecentLlamaLogs();
  let model: LlamaModel;
  try {
    model = await llama.loadModel({
      modelPath,
      gpuLayers: cpuOnly ? 0 : gpuLayers,
      // node-llama-cpp's VRAM estimate knows nothing of RPC workers; lmrun checked their memory above.
      ...(rpc !== undefined ? { ignoreMemorySafetyChecks: true } : {}),
      ...(options.signal ? { loadSignal: options.signal } : {}),
    });
  } catch (error) {
    throw new LmrunError(`failed to load ${path.basename(modelPath)}: ${explainNativeError(error)}`, { cause: error });
  }
  if (options.generationOnly === true) {
    // The mapping's pages of tensors llama.cpp copied into repacked buffers (AMX, CPU_REPACK) or to a GPU stay
    // resident after the load though nothing reads them again (the 135M model on an AMX machine: +40 MB of RSS);
    // a generating process lets them go, and the pages its mapped tensors use come back on the first decode.
    releaseFilePages(realPath(modelPath));
  }
  const batchThreads = options.batchThreads ?? Math.max(1, llama.cpuMathCores);
  setAdaptiveThreads(options.adaptiveThreads === true, options.adaptiveThreads === true && options.batchThreads === undefined);
  let context: LlamaContext;
  const unifiedAsked = options.unifiedKvCache === true && requestUnifiedKvCache(options.sequences ?? 1);
  const unifiedBefore = unifiedAsked ? threadpoolStatus().unifiedContexts : 0;
  const outputsLimited = options.generationOnly === true && limitOutputs(options.sequences ?? 1);
  try {
    context = await model.createContext({
      contextSize,
      threads: { ideal: batchThreads, min: batchThreads },
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.sequences !== undefined ? { sequences: options.sequences } : {}),
      ...(options.cacheTypeK !== undefined ? { experimentalKvCacheKeyType: KV_TYPE_NAMES[options.cacheTypeK] as never } : {}),
      ...(options.cacheTypeV !== undefined ? { experimentalKvCacheValueType: KV_TYPE_NAMES[options.cacheTypeV] as never } : {}),
      ...(options.signal ? { createSignal: options.signal } : {}),
    });
  } catch (error) {
    await model.dispose();
    throw new LmrunError(`failed to create a ${contextSize}-token context: ${explainNativeError(error)}`, {
      hint: "Try a smaller --ctx",
      cause: error,
    });
  } finally {
    if (unifiedAsked) requestUnifiedKvCache(0); // only this context (and node-llama-cpp's measuring one)
    if (outputsLimited) limitOutputs(0);
  }
  const metadata = fileInfo.metadata;
  const summary: ModelSummary = {
    path: path.resolve(modelPath),
    fileName: path.basename(modelPath),
    architecture: metadata?.general?.architecture,
    name: metadata?.general?.name,
    trainContextSize,
    contextSize: context.contextSize,
    ...(options.contextSize !== undefined && context.contextSize > options.contextSize ? { requestedContextSize: options.contextSize } : {}),
    hasChatTemplate: typeof metadata?.tokenizer?.chat_template === "string",
    sizeBytes,
    parameters: insights.totalParameters || undefined,
    fileType: metadata?.general?.file_type !== undefined ? String(metadata.general.file_type) : undefined,
    gpu: llama.gpu,
    gpuLayers: model.gpuLayers,
    threads: options.threads,
    batchThreads,
    ...(rpc !== undefined
      ? { rpcDevices: rpc.devices.map((device) => ({ name: device.name, endpoint: device.description, freeBytes: device.freeBytes, totalBytes: device.totalBytes })) }
      : {}),
  };
  const kvUnified = unifiedAsked && threadpoolStatus().unifiedContexts > unifiedBefore;
  return new LoadedModel(llama, model, context, summary, kvUnified);
}

/**
 * --rpc: the engine build with llama.cpp's RPC backend, then the workers registered as its devices
 * (checked from JavaScript first). Serve and other long-lived callers use the same two steps.
 */
export async function connectRpcWorkers(gpu: LoadOptions["gpu"], rpc: RpcLoadOptions, signal?: AbortSignal) {
  const [{ findRpcEngine, linkEngine }, { registerRpcWorkers }] = await Promise.all([import("./engines.js"), import("./rpc/register.js")]);
  const engine = await findRpcEngine(gpu);
  await linkEngine(engine);
  let llama: Llama;
  try {
    llama = await getSharedLlama(gpu, engine);
  } catch (error) {
    throw new LmrunError(`cannot load the engine build ${engine.id}: ${(error as Error).message.split("\n")[0]}`, {
      hint: `Rebuild it: lmrun engine build --rpc${engine.gpu === "cpu" ? "" : ` --gpu ${engine.gpu}`}`,
      cause: error,
    });
  }
  const { workers, devices } = await registerRpcWorkers(llama.llamaCppRelease.release, rpc.endpoints, { tensorSplit: rpc.tensorSplit, signal });
  return { llama, engine, workers, devices };
}

function explainNativeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const lastLog = recentLlamaLogs()
    .filter((l) => l.startsWith("[error]") || l.startsWith("[warn]"))
    .at(-1);
  return lastLog ? `${message} (llama.cpp: ${lastLog.replace(/^\[\w+\]\s*/, "")})` : message;
}

function realPath(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}
