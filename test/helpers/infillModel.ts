import { writeBigramLlama } from "./ggufWriter.js";

/**
 * A code model whose fill-in-the-middle answer is known: the bigram oracle (ggufWriter.ts) with Qwen2.5-Coder's
 * FIM tokens (`<|fim_prefix|>`, `<|fim_suffix|>`, `<|fim_middle|>`, which llama.cpp finds by their text). After
 * the middle token, at temperature 0, it writes "▁mid" "dle" then the end token: the middle " middle", whatever
 * the prefix and suffix. Without a chat template, as base code models ship.
 */
export const INFILL_ORACLE = { middle: " middle", generatedTokens: 3 } as const;

/** `repository`: Qwen2.5-Coder's repository-level tokens too (`<|repo_name|>`, `<|file_sep|>`), for /infill's input_extra. */
export function writeInfillOracle(file: string, options: { repository?: boolean } = {}): string {
  const letters = [..."abcdefghijklmnopqrstuvwxyz(){}=;:,.", "\u2581mid", "dle"];
  const specials = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", ...(options.repository ? ["<|repo_name|>", "<|file_sep|>"] : [])];
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const tokens = ["<unk>", "<s>", "</s>", ...bytes, "\u2581", ...letters, ...specials];
  const id = (token: string) => tokens.indexOf(token);
  const chain = new Map<number, number>([
    [id("<|fim_middle|>"), id("\u2581mid")],
    [id("\u2581mid"), id("dle")],
  ]);
  writeBigramLlama(file, letters, (current, next) => (next === (chain.get(current) ?? id("</s>")) ? 10 : 0), { specials });
  return file;
}
