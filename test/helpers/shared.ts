import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const sharedDir = path.resolve(repoRoot, "..", "shared");
export const hasShared = fs.existsSync(path.join(sharedDir, "models"));
/** Shown by describe.skipIf titles so a fresh clone says why model tests did not run. */
export const sharedSkipReason = `needs ../shared/models (not found at ${sharedDir})`;

export function sharedModel(name: string): string {
  return path.join(sharedDir, "models", name);
}

export function sharedCorpus(name: string): string {
  return path.join(sharedDir, "corpora", name);
}

export const bundledTinyModel = path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf");

/** A test title that says why it is skipped when ../shared is missing. */
export function sharedTitle(title: string): string {
  return hasShared ? title : `${title} [skipped: ${sharedSkipReason}]`;
}
