import fs from "node:fs";
import path from "node:path";
import { writeBigramLlama } from "./ggufWriter.js";
import { repoRoot } from "./shared.js";

/**
 * A thinking model whose answer is known: the bigram oracle (ggufWriter.ts) written as a Qwen3 with
 * Qwen3's chat template, so node-llama-cpp picks its Qwen chat wrapper and finds `<think>` segments.
 * At temperature 0, after the prompt's last token (the newline of "<|im_start|>assistant\n") it
 * generates the 7 tokens `<think>` `\n` `hm\n` `</think>` `\n\n` `Ok` `</s>`: the thoughts "hm",
 * the answer "Ok". Its thought tags are control tokens, which a plain completion's text leaves out;
 * `tagsAsText` writes them as Qwen3's own GGUFs have them, user-defined tokens (its tokenizer's "special":
 * false), which the text shows. (node-llama-cpp's chat finds no thought segments in that variant: this SPM
 * vocabulary tokenises the chat wrapper's tag text "<think>\n" with a word-start space after the user-defined
 * token, "<think> \n", which the generated text never matches; Qwen3's byte-level BPE adds no such space.)
 */
export const THINKING_ORACLE = { thoughts: "hm", answer: "Ok", generatedTokens: 7 } as const;

export function writeThinkingOracle(file: string, options: { thinks?: boolean; tagsAsText?: boolean } = {}): string {
  const template = fs.readFileSync(path.join(repoRoot, "test", "fixtures", "templates", "Qwen-Qwen3-0.6B.jinja"), "utf8");
  const letters = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,?!'", "\n", "\n\n", "hm\n", "Ok"];
  const specials = ["<|im_start|>", "<|im_end|>", "<think>", "</think>"];
  // The token list as writeBigramLlama lays it out: <unk> <s> </s>, 256 byte tokens, "▁", letters, specials.
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const tokens = ["<unk>", "<s>", "</s>", ...bytes, "\u2581", ...letters, ...specials];
  const id = (token: string) => tokens.indexOf(token);
  // The newline after <think> is the byte token, so that it does not lead back to <think>.
  // thinks: false — the same model (same template, same chat wrapper) answers "Ok" at once, never thinking.
  const chain = new Map<number, number>([
    [id("\n"), options.thinks === false ? id("Ok") : id("<think>")],
    [id("<think>"), id("<0x0A>")],
    [id("<0x0A>"), id("hm\n")],
    [id("hm\n"), id("</think>")],
    [id("</think>"), id("\n\n")],
    [id("\n\n"), id("Ok")],
    [id("Ok"), id("</s>")],
  ]);
  writeBigramLlama(file, letters, (current, next) => (next === (chain.get(current) ?? id("</s>")) ? 10 : 0), { specials, ...(options.tagsAsText ? { userDefined: ["<think>", "</think>"] } : {}), chatTemplate: template, architecture: "qwen3" });
  return file;
}
