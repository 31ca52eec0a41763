import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { rmsScale, writeBigramLlama, type BigramLlama } from "../helpers/ggufWriter.js";

/**
 * The oracle: a one-layer llama whose next-token distribution is a bigram table we wrote
 * ourselves, so its perplexity on a text follows in closed form from the text's tokens.
 */
const letters = ["a", "b", "c", "d", "e", "f", "g"];
// Divided by the RMS-norm scale (about 16.5 for this vocabulary) so that the logits stay moderate.
const logit = (t: number, j: number) => (3 * Math.sin(1.3 * t + 0.7 * j) + (j === t + 1 ? 2 : 0) - 0.01 * j) / 16;

function makeText(words: number): string {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const out: string[] = [];
  for (let w = 0; w < words; w++) {
    const len = 1 + Math.floor(next() * 5);
    let word = "";
    for (let i = 0; i < len; i++) word += letters[Math.floor(next() * letters.length)];
    out.push(word);
  }
  return out.join(" ");
}

/** SentencePiece with single-character pieces: BOS, a leading "▁", then one token per character. */
function tokensOf(model: BigramLlama, text: string): number[] {
  const ids = new Map(model.tokens.map((t, i) => [t, i]));
  return [1, ...Array.from(("\u2581" + text).replaceAll(" ", "\u2581"), (ch) => ids.get(ch)!)];
}

/** llama-perplexity's method on the closed-form distributions. */
function expectedPpl(model: BigramLlama, tokens: number[], ctx: number, chunks?: number): { ppl: number; error: number; count: number } {
  const scale = rmsScale(model.nEmbd, model.eps);
  const nChunks = Math.min(chunks ?? Infinity, Math.floor(tokens.length / ctx));
  const first = ctx / 2;
  let sum = 0;
  let sum2 = 0;
  let count = 0;
  for (let c = 0; c < nChunks; c++) {
    for (let i = first; i < ctx - 1; i++) {
      const current = tokens[c * ctx + i]!;
      const target = tokens[c * ctx + i + 1]!;
      const row = model.logitTable[current]!.map((l) => scale * l);
      const max = Math.max(...row);
      const logSum = Math.log(row.reduce((s, l) => s + Math.exp(l - max), 0));
      const nll = -(row[target]! - max - logSum);
      sum += nll;
      sum2 += nll * nll;
      count++;
    }
  }
  const mean = sum / count;
  const ppl = Math.exp(mean);
  return { ppl, error: Math.sqrt((sum2 / count - mean * mean) / (count - 1)) * ppl, count };
}

describe("perplexity oracle: a bigram llama written by the test", () => {
  let dir: string;
  let modelPath: string;
  let textPath: string;
  let model: BigramLlama;
  let text: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-oracle-"));
    modelPath = path.join(dir, "bigram.gguf");
    textPath = path.join(dir, "text.txt");
    model = writeBigramLlama(modelPath, letters, logit);
    text = makeText(700);
    fs.writeFileSync(textPath, text + "\n");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("equals the closed-form perplexity of the text's tokens (relative error < 1e-4)", async () => {
    const tokens = tokensOf(model, text);
    const expected = expectedPpl(model, tokens, 64);
    const result = await runCli(["perplexity", modelPath, "-f", textPath, "-c", "64", "-t", "1", "--json"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json.textTokens).toBe(tokens.length);
    expect(json.tokensScored).toBe(expected.count);
    expect(json.chunks).toBe(Math.floor(tokens.length / 64));
    expect(Math.abs(json.ppl / expected.ppl - 1)).toBeLessThan(1e-4);
    expect(Math.abs(json.pplError / expected.error - 1)).toBeLessThan(1e-3);
  });

  it("honours --chunks and prints llama-perplexity's final line", async () => {
    const expected = expectedPpl(model, tokensOf(model, text), 32, 5);
    const result = await runCli(["perplexity", modelPath, "-f", textPath, "-c", "32", "--chunks", "5", "-t", "1"]);
    expect(result.code).toBe(0);
    const match = /^Final estimate: PPL = (\d+\.\d{4}) \+\/- (\d+\.\d{5})\n$/.exec(result.stdout);
    expect(match).not.toBeNull();
    expect(Math.abs(Number(match![1]) / expected.ppl - 1)).toBeLessThan(1e-4);
  });
});
