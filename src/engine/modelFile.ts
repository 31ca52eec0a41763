import fs from "node:fs/promises";
import path from "node:path";
import type { GgufFileInfo, GgufInsights, Llama } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";

/**
 * Cheap checks on a model file before llama.cpp sees it, so that a wrong path,
 * a non-GGUF file or an outdated GGUF version gets a one-line answer instead of a native log dump.
 */
export async function checkModelFileHeader(modelPath: string): Promise<{ sizeBytes: number; version: number }> {
  let stat;
  try {
    stat = await fs.stat(modelPath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new LmrunError(`model file not found: ${modelPath}`, {
        hint: "Check the path, or give a catalogue name such as `tiny` (lmrun ls lists local models)",
      });
    }
    if (code === "EACCES") throw new LmrunError(`cannot read model file ${modelPath}: permission denied`);
    throw error;
  }
  if (stat.isDirectory()) {
    throw new LmrunError(`${modelPath} is a directory, not a model file`, { hint: "Give the path of a .gguf file" });
  }
  const handle = await fs.open(modelPath, "r");
  const header = Buffer.alloc(8);
  try {
    await handle.read(header, 0, 8, 0);
  } finally {
    await handle.close();
  }
  if (stat.size < 8 || header.toString("latin1", 0, 4) !== "GGUF") {
    throw new LmrunError(`${path.basename(modelPath)} is not a GGUF model file (no GGUF magic bytes)`, {
      hint: "lmrun runs llama.cpp GGUF files; convert other formats with llama.cpp's convert_hf_to_gguf.py",
    });
  }
  const version = header.readUInt32LE(4);
  if (version < 2) {
    throw new LmrunError(`${path.basename(modelPath)} is GGUF version ${version}, which llama.cpp no longer loads`, {
      hint: "Download a current GGUF (version 3) of this model",
    });
  }
  if (version > 3) {
    throw new LmrunError(`${path.basename(modelPath)} is GGUF version ${version}, newer than this llama.cpp supports`, {
      hint: "Update lmrun",
    });
  }
  return { sizeBytes: stat.size, version };
}

/**
 * Parses the GGUF header (node-llama-cpp) and checks what only the parsed header shows: that it is
 * whole, that the tensor data is there, and the vocabulary. `llama` makes the insights' memory
 * estimates; without it they still give the data size.
 */
export async function readModelHeader(modelPath: string, sizeBytes: number, llama?: Llama): Promise<{ fileInfo: GgufFileInfo; insights: GgufInsights }> {
  const { readGgufFileInfo, GgufInsights } = await loadNodeLlamaCpp();
  const fileName = path.basename(modelPath);
  let fileInfo: GgufFileInfo;
  try {
    fileInfo = await readGgufFileInfo(modelPath, { sourceType: "filesystem", logWarnings: false });
  } catch (error) {
    throw new LmrunError(`${fileName} is not a readable GGUF file: ${(error as Error).message}`, {
      hint: "The file may be corrupt or truncated; download it again",
      cause: error,
    });
  }
  checkParsedHeader(fileInfo, sizeBytes, fileName);
  const insights = await GgufInsights.from(fileInfo, llama);
  checkTensorData(fileInfo, insights.modelSize, sizeBytes, fileName);
  // After the size checks: a cut file can look like a broken vocabulary.
  checkVocabulary(fileInfo.metadata, fileName);
  return { fileInfo, insights };
}

/** checkModelFileHeader and readModelHeader: for commands that check every file before they start (bench), where loading comes too late. */
export async function checkModelFile(modelPath: string): Promise<{ sizeBytes: number; version: number; fileInfo: GgufFileInfo }> {
  const header = await checkModelFileHeader(modelPath);
  const { fileInfo } = await readModelHeader(modelPath, header.sizeBytes);
  return { ...header, fileInfo };
}

/** llama.cpp's names of the KV cache types lmrun accepts (-ctk/-ctv), as node-llama-cpp spells them. */
export const KV_TYPE_NAMES: Record<string, string> = {
  f32: "F32",
  f16: "F16",
  bf16: "BF16",
  q8_0: "Q8_0",
  q4_0: "Q4_0",
  q4_1: "Q4_1",
  iq4_nl: "IQ4_NL",
  q5_0: "Q5_0",
  q5_1: "Q5_1",
};

/** Elements per block of each cache type: a quantised cache needs it to divide the head size. */
const KV_TYPE_BLOCK: Record<string, number> = { f32: 1, f16: 1, bf16: 1, q8_0: 32, q4_0: 32, q4_1: 32, iq4_nl: 32, q5_0: 32, q5_1: 32 };

/**
 * Whether the model can hold its KV cache in these types: llama.cpp refuses a type whose block size
 * does not divide the head size, but only after printing log lines and failing the context
 * ("Failed to create context"); this says why before anything is loaded.
 */
export function checkCacheTypes(metadata: unknown, fileName: string, cache: { k?: readonly string[] | undefined; v?: readonly string[] | undefined }): void {
  const general = (metadata as { general?: { architecture?: string } } | undefined)?.general;
  const arch = (metadata as Record<string, { attention?: { key_length?: number; value_length?: number; head_count?: number | number[] }; embedding_length?: number } | undefined>)[general?.architecture ?? ""];
  const headCount = Array.isArray(arch?.attention?.head_count) ? Math.max(...arch.attention.head_count) : arch?.attention?.head_count;
  const perHead = arch?.embedding_length !== undefined && headCount ? arch.embedding_length / headCount : undefined;
  const heads = { k: arch?.attention?.key_length ?? perHead, v: arch?.attention?.value_length ?? perHead };
  for (const which of ["k", "v"] as const) {
    const size = heads[which];
    for (const type of cache[which] ?? []) {
      const block = KV_TYPE_BLOCK[type] ?? 1;
      if (size !== undefined && Number.isInteger(size) && size % block !== 0) {
        throw new LmrunError(`-ct${which} ${type} cannot be used with ${fileName}: its blocks of ${block} do not divide the model's ${which === "k" ? "key" : "value"} head size of ${size}`, {
          exitCode: 2,
          hint: "Use f16 (the default), f32 or bf16 for this model",
        });
      }
    }
  }
}

/**
 * What is structurally wrong with a model file (the checks `run` makes before llama.cpp sees it:
 * magic, version, a whole header, the tensor data, the vocabulary), or undefined when nothing is.
 * For the store's listings, which report a file rather than fail on it.
 */
export async function modelFileProblem(modelPath: string): Promise<string | undefined> {
  try {
    await checkModelFile(modelPath);
    return undefined;
  } catch (error) {
    if (error instanceof LmrunError) return error.message;
    throw error;
  }
}

/** The file must hold its tensors' data: a download cut after the header is caught here, before llama.cpp. */
export function checkTensorData(
  info: { fullTensorInfo?: readonly { fileOffset: number | bigint }[] | undefined; tensorInfo?: readonly { fileOffset: number | bigint }[] | undefined },
  tensorDataBytes: number,
  sizeBytes: number,
  fileName: string,
): void {
  const offsets = (info.fullTensorInfo ?? info.tensorInfo ?? []).map((t) => Number(t.fileOffset));
  const minimumSize = expectedMinimumFileSize(offsets, tensorDataBytes);
  if (sizeBytes < minimumSize) {
    throw new LmrunError(`${fileName} is truncated: it holds ${sizeBytes} bytes but its tensors need at least ${minimumSize}`, {
      hint: "The download was probably interrupted; pull or download it again",
    });
  }
}

/** Bytes the tensor data needs at least: where the last tensor starts plus the data not yet accounted for. */
export function expectedMinimumFileSize(tensorFileOffsets: number[], tensorDataBytes: number): number {
  if (tensorFileOffsets.length === 0) return 0;
  const dataStart = Math.min(...tensorFileOffsets);
  return dataStart + tensorDataBytes;
}

/**
 * What node-llama-cpp parsed must be a whole header of a model: its reader does not fail on a file
 * cut inside the header (it parses zeros), so lmrun compares where the header ends with the file's
 * size. Before this, the first bytes of a real model gave "Cannot read properties of undefined" or
 * a made-up vocabulary problem.
 */
export function checkParsedHeader(info: { infoEndOffset?: number; metadata?: unknown }, sizeBytes: number | undefined, fileName: string): void {
  if (sizeBytes !== undefined && typeof info.infoEndOffset === "number" && info.infoEndOffset > sizeBytes) {
    throw new LmrunError(`${fileName} is truncated: it holds ${sizeBytes} bytes but its GGUF header alone takes ${info.infoEndOffset}`, {
      hint: "The download was probably interrupted; pull or download it again",
    });
  }
  const architecture = (info.metadata as { general?: { architecture?: unknown } } | undefined)?.general?.architecture;
  if (typeof architecture !== "string" || architecture === "") {
    throw new LmrunError(`${fileName} is not a model: its GGUF header names no architecture (general.architecture)`, {
      hint: "lmrun runs llama.cpp model files; this GGUF holds something else (an adapter, a vocabulary) or is damaged",
    });
  }
}

/**
 * A SentencePiece ("llama") vocabulary must hold the 256 byte tokens <0x00>…<0xFF>: llama.cpp spells
 * out anything else byte by byte, and when a byte token is missing it throws a C++ exception that
 * nothing catches — node-llama-cpp's first tokenisation at load then aborts the whole process
 * (measured: SIGABRT, "terminate called after throwing an instance of 'std::out_of_range'").
 * Such a file was converted wrongly; it gets a one-line error before llama.cpp sees it.
 */
export function checkVocabulary(metadata: unknown, fileName: string): void {
  const tokenizer = (metadata as { tokenizer?: { ggml?: { model?: unknown; tokens?: readonly unknown[] } } } | undefined)?.tokenizer?.ggml;
  if (tokenizer?.model !== "llama" || !Array.isArray(tokenizer.tokens) || tokenizer.tokens.length === 0) return;
  const missing = missingByteTokens(tokenizer.tokens);
  if (missing.length === 0) return;
  throw new LmrunError(
    `${fileName} has a SentencePiece vocabulary without its byte tokens (${missing.length} of the 256, e.g. ${missing[0]}, are missing), on which llama.cpp crashes at the first text it cannot spell`,
    { hint: "The file was converted wrongly: use another GGUF of this model, or convert it again with llama.cpp's convert_hf_to_gguf.py" },
  );
}

/** The <0xNN> tokens llama.cpp's byte_to_token() would not find (an ASCII byte may also be the character itself). */
export function missingByteTokens(tokens: readonly unknown[]): string[] {
  const vocabulary = new Set(tokens.filter((t): t is string => typeof t === "string"));
  const missing: string[] = [];
  for (let byte = 0; byte < 256; byte++) {
    const name = `<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`;
    if (vocabulary.has(name) || (byte < 0x80 && vocabulary.has(String.fromCharCode(byte)))) continue;
    missing.push(name);
  }
  return missing;
}
