import os from "node:os";
import path from "node:path";
import type { GgufFileInfo, GgufInsights, Llama } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { getSharedLlama } from "./llama.js";
import { checkModelFileHeader, checkParsedHeader, checkTensorData } from "./modelFile.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";
import { modelCapabilities } from "../models/capabilities.js";

/**
 * What `lmrun show` prints: the model's GGUF metadata and node-llama-cpp's insights, including the
 * memory a context of several sizes needs on this machine and whether it fits.
 */
export interface ModelReport {
  source: { kind: "file"; path: string } | { kind: "remote"; url: string };
  name: string | undefined;
  architecture: string | undefined;
  parameters: number | undefined;
  quant: string | undefined;
  layers: number;
  contextLength: number | undefined;
  chatTemplate: string | undefined;
  /** As ollama lists them: completion, tools, thinking; embedding. */
  capabilities: string[];
  license: string | undefined;
  /** Bytes of tensor data (what the weights take). */
  modelBytes: number;
  machine: { totalRamBytes: number; freeRamBytes: number; gpu: string | false; totalVramBytes: number; freeVramBytes: number };
  memory: Array<{
    contextSize: number;
    cpu: { ramBytes: number; fits: boolean };
    gpu: { vramBytes: number; ramBytes: number; fits: boolean } | null;
  }>;
  /** The largest of the listed context sizes that fits: on the GPU if there is one, else in RAM. */
  largestFittingContext: number | null;
  /** node-llama-cpp's own pick for this machine (its configuration resolver), when a backend loaded. */
  recommended: { gpuLayers: number; contextSize: number; ramBytes: number; vramBytes: number; compatibilityScore: number } | null;
  warnings: string[];
}

const CONTEXT_SIZES = [2048, 4096, 8192, 16384, 32768, 65536, 131072];

export interface InspectSource {
  path?: string;
  url?: string;
  headers?: Record<string, string>;
  /** The Hugging Face endpoint, so node-llama-cpp sends HF_TOKEN to it. */
  huggingFaceEndpoint?: string;
  token?: string;
}

/** Reads the GGUF header (only the header for a URL: node-llama-cpp fetches byte ranges) and estimates memory. */
export async function inspectModel(source: InspectSource, options: { signal?: AbortSignal } = {}): Promise<ModelReport> {
  const { readGgufFileInfo, GgufInsights } = await loadNodeLlamaCpp();
  let fileInfo: GgufFileInfo;
  const target = source.path ?? source.url!;
  // A missing file, a directory, not GGUF: the one-line answers run gives, not ENOENT/EISDIR from the reader.
  const local = source.path !== undefined ? await checkModelFileHeader(source.path) : undefined;
  try {
    fileInfo = await readGgufFileInfo(target, {
      sourceType: source.path !== undefined ? "filesystem" : "network",
      logWarnings: false,
      ...(source.headers ? { fetchHeaders: source.headers } : {}),
      ...(source.huggingFaceEndpoint ? { endpoints: { huggingFace: source.huggingFaceEndpoint } } : {}),
      ...(source.token ? { tokens: { huggingFace: source.token } } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(source.url !== undefined ? { fetchRetryOptions: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 1000 } } : {}),
    });
  } catch (error) {
    throw new LmrunError(`cannot read the GGUF header of ${source.path ? path.basename(source.path) : source.url}: ${(error as Error).message}`, {
      hint: source.path ? "The file may be corrupt or not a GGUF model" : "Check the reference and the connection (HF_TOKEN for gated models)",
      cause: error,
    });
  }
  // A local file cut inside its header parses as zeros: say so instead of reporting nonsense.
  checkParsedHeader(fileInfo, local?.sizeBytes, path.basename(target));
  let llama: Llama | undefined;
  try {
    llama = await getSharedLlama("auto");
  } catch {
    llama = undefined; // insights still work without a backend, only GPU figures are missing
  }
  const insights: GgufInsights = await GgufInsights.from(fileInfo, llama);
  // A file cut after its header (a truncated download) is refused as run refuses it, not described.
  if (local !== undefined) checkTensorData(fileInfo, insights.modelSize, local.sizeBytes, path.basename(target));
  const facts = await factsOf(fileInfo, insights);
  const quant = facts.quant;
  const metadata = fileInfo.metadata as unknown as { general?: { license?: string } };

  const vram = llama && llama.gpu !== false ? await llama.getVramState() : undefined;
  const machine = {
    totalRamBytes: os.totalmem(),
    freeRamBytes: os.freemem(),
    gpu: llama?.gpu ?? (false as const),
    totalVramBytes: vram?.total ?? 0,
    freeVramBytes: vram?.free ?? 0,
  };
  const train = insights.trainContextSize;
  const sizes = [...new Set([...CONTEXT_SIZES.filter((c) => train === undefined || c <= train), ...(train !== undefined ? [train] : [])])].sort((a, b) => a - b);
  const cpuModel = insights.estimateModelResourceRequirements({ gpuLayers: 0, useMmap: false });
  const gpuModel = machine.gpu !== false ? insights.estimateModelResourceRequirements({ gpuLayers: insights.totalLayers }) : undefined;
  const memory = sizes.map((contextSize) => {
    const cpuContext = insights.estimateContextResourceRequirements({ contextSize, modelGpuLayers: 0, batchSize: Math.min(512, contextSize) });
    const cpuRam = cpuModel.cpuRam + cpuContext.cpuRam;
    let gpu: ModelReport["memory"][number]["gpu"] = null;
    if (gpuModel !== undefined) {
      const gpuContext = insights.estimateContextResourceRequirements({ contextSize, modelGpuLayers: insights.totalLayers, batchSize: Math.min(512, contextSize) });
      const vramBytes = gpuModel.gpuVram + gpuContext.gpuVram;
      const ramBytes = gpuModel.cpuRam + gpuContext.cpuRam;
      gpu = { vramBytes, ramBytes, fits: vramBytes <= machine.freeVramBytes && ramBytes <= machine.freeRamBytes };
    }
    return { contextSize, cpu: { ramBytes: cpuRam, fits: cpuRam <= machine.freeRamBytes }, gpu };
  });
  let recommended: ModelReport["recommended"] = null;
  if (llama !== undefined) {
    try {
      const scored = await insights.configurationResolver.resolveAndScoreConfig();
      const v = scored.resolvedValues;
      recommended = { gpuLayers: v.gpuLayers, contextSize: v.contextSize, ramBytes: v.totalRamUsage, vramBytes: v.totalVramUsage, compatibilityScore: Math.round(scored.compatibilityScore * 1000) / 1000 };
    } catch {
      recommended = null; // the estimate is a nicety; the table above still stands
    }
  }
  const fitting = memory.filter((m) => (m.gpu ? m.gpu.fits : m.cpu.fits)).map((m) => m.contextSize);
  return {
    source: source.path !== undefined ? { kind: "file", path: source.path } : { kind: "remote", url: source.url! },
    name: facts.name,
    architecture: facts.architecture,
    parameters: facts.parameters,
    quant,
    // node-llama-cpp counts the output layer too; people quote the block count.
    layers: Number((fileInfo.architectureMetadata as { block_count?: number } | undefined)?.block_count ?? insights.totalLayers - 1),
    contextLength: train,
    chatTemplate: facts.chatTemplate,
    capabilities: modelCapabilities(facts),
    license: metadata.general?.license,
    modelBytes: insights.modelSize,
    machine,
    memory,
    largestFittingContext: fitting.length > 0 ? Math.max(...fitting) : null,
    recommended,
    warnings: insights.getWarnings(source.path),
  };
}

/** What a GGUF header says of a model, without loading it (the server's /api/show and /api/tags). */
export interface ModelFileFacts {
  name: string | undefined;
  architecture: string | undefined;
  parameters: number | undefined;
  /** llama.cpp's file type name (Q4_K_M, Q8_0, F16 ...). */
  quant: string | undefined;
  contextLength: number | undefined;
  embeddingLength: number | undefined;
  chatTemplate: string | undefined;
  /** The model pools its outputs into one vector (an embedding model such as BERT), rather than predicting tokens. */
  pooling: boolean;
  /** Its vocabulary has fill-in-the-middle tokens (code models): ollama's "insert" capability. */
  fillInMiddle: boolean;
  /** Every metadata key as "a.b.c"; long arrays (the vocabulary, merges) as null, as ollama shows them unless verbose. */
  metadata: Record<string, unknown>;
}

const LONG_ARRAY = 64;

function flattenMetadata(value: unknown, prefix: string, into: Record<string, unknown>): Record<string, unknown> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flattenMetadata(inner, prefix ? `${prefix}.${key}` : key, into);
  } else {
    into[prefix] = Array.isArray(value) && value.length > LONG_ARRAY ? null : typeof value === "bigint" ? Number(value) : value;
  }
  return into;
}

export async function describeModelFile(modelPath: string): Promise<ModelFileFacts> {
  const { readGgufFileInfo, GgufInsights } = await loadNodeLlamaCpp();
  const fileInfo = await readGgufFileInfo(modelPath, { sourceType: "filesystem", logWarnings: false });
  return factsOf(fileInfo, await GgufInsights.from(fileInfo));
}

/** llama.cpp's fill-in-the-middle prefix and suffix tokens: ids in the header, else found by their text as llama-vocab.cpp finds them. */
const FIM_PREFIX_TEXTS = ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>", "\u2581<PRE>", "<|code_prefix|>", "<|prefix|>"];
const FIM_SUFFIX_TEXTS = ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\uff5cfim\u2581hole\uff5c>", "<SUF>", "\u2581<SUF>", "<|code_suffix|>", "<|suffix|>"];

function hasFillInMiddleTokens(tokenizer: Record<string, unknown> | undefined): boolean {
  if (tokenizer === undefined) return false;
  const byId = (keys: string[]) => keys.some((key) => typeof tokenizer[key] === "number");
  const tokens = Array.isArray(tokenizer.tokens) ? new Set(tokenizer.tokens as unknown[]) : new Set<unknown>();
  const byText = (texts: string[]) => texts.some((text) => tokens.has(text));
  return (byId(["fim_pre_token_id", "prefix_token_id"]) || byText(FIM_PREFIX_TEXTS)) && (byId(["fim_suf_token_id", "suffix_token_id"]) || byText(FIM_SUFFIX_TEXTS));
}

async function factsOf(fileInfo: GgufFileInfo, insights: GgufInsights): Promise<ModelFileFacts> {
  const { GgufFileType, GgmlType } = await loadNodeLlamaCpp();
  const metadata = fileInfo.metadata as unknown as {
    general?: { name?: string; architecture?: string; file_type?: number };
    tokenizer?: { chat_template?: string; ggml?: Record<string, unknown> };
  };
  const architecture = fileInfo.architectureMetadata as { embedding_length?: number; pooling_type?: number } | undefined;
  const fileType = metadata.general?.file_type;
  const dominant = insights.dominantTensorType;
  const quant =
    fileType !== undefined ? String(GgufFileType[fileType] ?? fileType).replace(/^(MOSTLY|ALL)_/, "") : dominant !== undefined ? GgmlType[dominant] : undefined;
  return {
    name: metadata.general?.name,
    architecture: metadata.general?.architecture,
    parameters: insights.totalParameters || undefined,
    quant,
    contextLength: insights.trainContextSize,
    embeddingLength: architecture?.embedding_length,
    chatTemplate: typeof metadata.tokenizer?.chat_template === "string" ? metadata.tokenizer.chat_template : undefined,
    // llama.cpp's LLAMA_POOLING_TYPE_NONE is 0; generative models have no pooling_type key at all.
    pooling: architecture?.pooling_type !== undefined && architecture.pooling_type > 0,
    fillInMiddle: hasFillInMiddleTokens(metadata.tokenizer?.ggml),
    metadata: flattenMetadata(fileInfo.metadata, "", {}),
  };
}
