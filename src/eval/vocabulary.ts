import path from "node:path";
import { LmrunError } from "../errors.js";

/**
 * --base compares distributions token by token, which only means something when both models
 * share one tokenizer. Checked from the GGUF headers, before any compute.
 */
export async function checkSameVocabulary(
  basePath: string,
  modelPaths: string[],
  readTokens: (modelPath: string) => Promise<readonly string[] | undefined>,
): Promise<void> {
  const base = await readTokens(basePath);
  for (const modelPath of modelPaths) {
    const tokens = await readTokens(modelPath);
    if (base === undefined || tokens === undefined) continue;
    const same = base.length === tokens.length && base.every((t, i) => t === tokens[i]);
    if (!same) {
      throw new LmrunError(
        `vocabulary mismatch: ${path.basename(modelPath)} (${tokens.length} tokens) and the base ${path.basename(basePath)} (${base.length} tokens) do not share a tokenizer`,
        { hint: "Compare quantisations of the same model only" },
      );
    }
  }
}
