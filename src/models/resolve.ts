import fs from "node:fs";
import path from "node:path";
import { LmrunError } from "../cli/errors.js";
import { packageRoot } from "../config/paths.js";

/** What a model reference turned out to be, before anything is fetched or loaded. */
export type ModelRef =
  | { kind: "bundled"; name: string; path: string }
  | { kind: "path"; path: string };

export const BUNDLED_MODELS: Record<string, string> = {
  tiny: "assets/models/stories260K-Q8_0.gguf",
};

function looksLikePath(ref: string): boolean {
  return ref.includes("/") || ref.includes("\\") || ref.startsWith(".") || ref.toLowerCase().endsWith(".gguf");
}

/** Parses a reference without touching the network. Pure apart from checking that a path exists. */
export function parseModelRef(ref: string): ModelRef {
  const trimmed = ref.trim();
  if (trimmed === "") throw new LmrunError("no model given", { exitCode: 2, hint: "Pass a .gguf path or `tiny`" });
  const bundled = BUNDLED_MODELS[trimmed.toLowerCase()];
  if (bundled !== undefined) return { kind: "bundled", name: trimmed.toLowerCase(), path: path.join(packageRoot(), bundled) };
  if (looksLikePath(trimmed) || fs.existsSync(trimmed)) return { kind: "path", path: path.resolve(trimmed) };
  throw new LmrunError(`unknown model "${trimmed}"`, {
    exitCode: 2,
    hint: "Give a path to a .gguf file, or `tiny` for the bundled demo model",
  });
}

export interface ResolvedModel {
  path: string;
  /** How to name the model in output. */
  displayName: string;
}

/** Turns a reference into a local file path. */
export async function resolveModel(ref: string): Promise<ResolvedModel> {
  const parsed = parseModelRef(ref);
  if (parsed.kind === "bundled") return { path: parsed.path, displayName: parsed.name };
  return { path: parsed.path, displayName: path.basename(parsed.path) };
}
