/**
 * Corpus BLEU as sacrebleu 2.x computes it by default (BLEU(): tokenize="13a", smooth_method="exp",
 * max n-gram order 4, no lowercasing, not effective order): written from sacrebleu's documented
 * behaviour and checked against values sacrebleu 2.6.0 printed (test/eval/metrics.unit.test.ts).
 */

const MAX_ORDER = 4;

/** Python's str.split() whitespace. */
export const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

export function pySplit(text: string): string[] {
  return text.split(PY_SPACE).filter((t) => t !== "");
}

const PUNCT_13A = /([{-~[-` -&(-+:-@/])/gu;

/** mteval-v13a's tokenisation, as sacrebleu's Tokenizer13a (after rstrip of the segment). */
export function tokenize13a(segment: string): string {
  let line = segment.replace(/[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u, "");
  line = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (line.includes("&")) line = line.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  line = ` ${line} `;
  line = line.replace(PUNCT_13A, " $1 ");
  line = line.replace(/([^0-9])([.,])/gu, "$1 $2 ");
  line = line.replace(/([.,])([^0-9])/gu, " $1 $2");
  line = line.replace(/([0-9])(-)/gu, "$1 $2 ");
  return pySplit(line).join(" ");
}

function ngramCounts(tokens: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (let n = 1; n <= MAX_ORDER; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      // \u0001 cannot occur inside a token (tokens have no whitespace, and it is a control character).
      const key = `${n}\u0001${tokens.slice(i, i + n).join("\u0001")}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** One segment's sufficient statistics: [hypLen, refLen, correct x4, total x4]. */
export function bleuSegmentStats(hypothesis: string, references: string[]): number[] {
  const hyp = pySplit(tokenize13a(hypothesis));
  const refMax = new Map<string, number>();
  const refLens: number[] = [];
  for (const reference of references) {
    const tokens = pySplit(tokenize13a(reference));
    refLens.push(tokens.length);
    for (const [k, c] of ngramCounts(tokens)) refMax.set(k, Math.max(refMax.get(k) ?? 0, c));
  }
  // The closest reference length; on a tie, the shorter.
  let closest = -1;
  let closestDiff = -1;
  for (const len of refLens) {
    const diff = Math.abs(hyp.length - len);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closest = len;
    } else if (diff === closestDiff && len < closest) closest = len;
  }
  const correct = new Array<number>(MAX_ORDER).fill(0);
  const total = new Array<number>(MAX_ORDER).fill(0);
  for (const [key, count] of ngramCounts(hyp)) {
    const n = Number(key.slice(0, key.indexOf("\u0001"))) - 1;
    total[n]! += count;
    const ref = refMax.get(key);
    if (ref !== undefined) correct[n]! += Math.min(count, ref);
  }
  return [hyp.length, closest, ...correct, ...total];
}

export interface BleuScore {
  score: number;
  precisions: number[];
  brevityPenalty: number;
  sysLen: number;
  refLen: number;
}

/** sacrebleu's compute_bleu with exp smoothing (mteval's: 1/2^k for the k-th order with no match). */
export function bleuFromStats(stats: number[]): BleuScore {
  const [sysLen, refLen] = [stats[0]!, stats[1]!];
  const correct = stats.slice(2, 2 + MAX_ORDER);
  const total = stats.slice(2 + MAX_ORDER);
  const brevityPenalty = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(MAX_ORDER).fill(0);
  if (!correct.some((c) => c !== 0)) return { score: 0, precisions, brevityPenalty, sysLen, refLen };
  let smooth = 1;
  for (let n = 0; n < MAX_ORDER; n++) {
    if (total[n] === 0) break;
    if (correct[n] === 0) {
      smooth *= 2;
      precisions[n] = 100 / (smooth * total[n]!);
    } else precisions[n] = (100 * correct[n]!) / total[n]!;
  }
  // sacrebleu's my_log: log(0) floored to -9999999999.
  const logSum = precisions.reduce((s, p) => s + (p === 0 ? -9999999999 : Math.log(p)), 0);
  return { score: brevityPenalty * Math.exp(logSum / MAX_ORDER), precisions, brevityPenalty, sysLen, refLen };
}

export function sumStats(rows: number[][]): number[] {
  const out = new Array<number>(rows[0]?.length ?? 0).fill(0);
  for (const row of rows) row.forEach((v, i) => (out[i]! += v));
  return out;
}

export function corpusBleu(hypotheses: string[], references: string[][]): BleuScore {
  return bleuFromStats(sumStats(hypotheses.map((h, i) => bleuSegmentStats(h, references[i]!))));
}
