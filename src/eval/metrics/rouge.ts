import { porterStem } from "./porter.js";

/**
 * ROUGE-1, ROUGE-2 and ROUGE-L as Google's rouge-score (RougeScorer) computes them: lowercase,
 * every run of characters outside [a-z0-9] a separator, optionally Porter-stemmed tokens longer than
 * 3 characters (NLTK's stemmer: use_stemmer=True), n-gram overlap or LCS, F1 = 2PR/(P+R). With
 * several references, each type takes the reference with the best F1 (score_multi).
 */

export interface RougeScores {
  rouge1: number;
  rouge2: number;
  rougeL: number;
}

export function rougeTokens(text: string, stem: boolean): string[] {
  const tokens = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .split(/\s+/);
  return (stem ? tokens.map((t) => (t.length > 3 ? porterStem(t) : t)) : tokens).filter((t) => /^[a-z0-9]+$/.test(t));
}

function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

function ngramF1(target: string[], prediction: string[], n: number): number {
  const count = (tokens: string[]) => {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const k = tokens.slice(i, i + n).join(" ");
      m.set(k, (m.get(k) ?? 0) + 1);
    }
    return m;
  };
  const t = count(target);
  const p = count(prediction);
  let overlap = 0;
  for (const [k, c] of t) overlap += Math.min(c, p.get(k) ?? 0);
  const tTotal = Math.max(0, target.length - n + 1);
  const pTotal = Math.max(0, prediction.length - n + 1);
  return fmeasure(overlap / Math.max(pTotal, 1), overlap / Math.max(tTotal, 1));
}

function lcsF1(target: string[], prediction: string[]): number {
  if (target.length === 0 || prediction.length === 0) return 0;
  let prev = new Array<number>(prediction.length + 1).fill(0);
  for (let i = 1; i <= target.length; i++) {
    const row = new Array<number>(prediction.length + 1).fill(0);
    for (let j = 1; j <= prediction.length; j++) {
      row[j] = target[i - 1] === prediction[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, row[j - 1]!);
    }
    prev = row;
  }
  const lcs = prev[prediction.length]!;
  return fmeasure(lcs / prediction.length, lcs / target.length);
}

export function rougeScores(prediction: string, references: string[], stem: boolean): RougeScores {
  const p = rougeTokens(prediction, stem);
  const best: RougeScores = { rouge1: -1, rouge2: -1, rougeL: -1 };
  for (const reference of references) {
    const t = rougeTokens(reference, stem);
    best.rouge1 = Math.max(best.rouge1, ngramF1(t, p, 1));
    best.rouge2 = Math.max(best.rouge2, ngramF1(t, p, 2));
    best.rougeL = Math.max(best.rougeL, lcsF1(t, p));
  }
  return best;
}
