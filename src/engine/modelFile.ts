import fs from "node:fs/promises";
import path from "node:path";
import { LmrunError } from "../errors.js";

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

/** Bytes the tensor data needs at least: where the last tensor starts plus the data not yet accounted for. */
export function expectedMinimumFileSize(tensorFileOffsets: number[], tensorDataBytes: number): number {
  if (tensorFileOffsets.length === 0) return 0;
  const dataStart = Math.min(...tensorFileOffsets);
  return dataStart + tensorDataBytes;
}
