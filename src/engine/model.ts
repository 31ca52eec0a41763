import os from "node:os";
import path from "node:path";
import type { Llama, LlamaContext, LlamaModel } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { formatBytes } from "../io/format.js";
import { backendUnavailable, clearRecentLlamaLogs, getSharedLlama, recentLlamaLogs } from "./llama.js";
import { checkModelFileHeader, readModelHeader } from "./modelFile.js";
import type { LoadOptions, ModelSummary } from "./types.js";

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
  ) {}

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}

export async function loadModel(modelPath: string, options: LoadOptions): Promise<LoadedModel> {
  const { sizeBytes } = await checkModelFileHeader(modelPath);
  let llama: Llama;
  try {
    llama = await getSharedLlama(options.gpu);
  } catch (error) {
    throw backendUnavailable(options.gpu, error);
  }
  const { fileInfo, insights } = await readModelHeader(modelPath, sizeBytes, llama);
  if (!insights.isSupportedByLlamaCpp) {
    throw new LmrunError(
      `${path.basename(modelPath)} uses architecture "${fileInfo.metadata?.general?.architecture ?? "unknown"}", which this llama.cpp does not support`,
    );
  }

  const trainContextSize = insights.trainContextSize ?? 2048;
  const contextSize = options.contextSize ?? Math.min(trainContextSize, DEFAULT_CONTEXT_CAP);
  const cpuOnly = options.gpu === "cpu" || llama.gpu === false;
  const estimateLayers = cpuOnly ? 0 : options.gpuLayers === "max" ? insights.totalLayers : typeof options.gpuLayers === "number" ? options.gpuLayers : 0;
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

  clearRecentLlamaLogs();
  let model: LlamaModel;
  try {
    model = await llama.loadModel({
      modelPath,
      gpuLayers: cpuOnly ? 0 : options.gpuLayers,
      ...(options.signal ? { loadSignal: options.signal } : {}),
    });
  } catch (error) {
    throw new LmrunError(`failed to load ${path.basename(modelPath)}: ${explainNativeError(error)}`, { cause: error });
  }
  const batchThreads = options.batchThreads ?? Math.max(1, llama.cpuMathCores);
  let context: LlamaContext;
  try {
    context = await model.createContext({
      contextSize,
      threads: { ideal: batchThreads, min: batchThreads },
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.sequences !== undefined ? { sequences: options.sequences } : {}),
      ...(options.signal ? { createSignal: options.signal } : {}),
    });
  } catch (error) {
    await model.dispose();
    throw new LmrunError(`failed to create a ${contextSize}-token context: ${explainNativeError(error)}`, {
      hint: "Try a smaller --ctx",
      cause: error,
    });
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
  };
  return new LoadedModel(llama, model, context, summary);
}

function explainNativeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const lastLog = recentLlamaLogs()
    .filter((l) => l.startsWith("[error]") || l.startsWith("[warn]"))
    .at(-1);
  return lastLog ? `${message} (llama.cpp: ${lastLog.replace(/^\[\w+\]\s*/, "")})` : message;
}
