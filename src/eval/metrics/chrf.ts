import { pySplit } from "./bleu.js";

/**
 * chrF as sacrebleu 2.x's CHRF() by default: chrF2 (beta 2), character n-grams up to 6, no word
 * n-grams, whitespace removed, no lowercasing, no eps smoothing; per segment the statistics of the
 * reference with the best sentence score, summed over the corpus. Strings are taken as code points,
 * as Python does.
 */

const CHAR_ORDER = 6;
const BETA = 2;

function charNgrams(text: string): Array<Map<string, number>> {
  const chars = Array.from(pySplit(text).join(""));
  const out: Array<Map<string, number>> = [];
  for (let n = 1; n <= CHAR_ORDER; n++) {
    const counts = new Map<string, number>();
    for (let i = 0; i + n <= chars.length; i++) {
      const key = chars.slice(i, i + n).join("");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    out.push(counts);
  }
  return out;
}

/** sacrebleu's _compute_f_score over [hyp, ref, match] triples. */
export function chrfFromStats(stats: number[]): number {
  const eps = 1e-16;
  const factor = BETA ** 2;
  let avgPrec = 0;
  let avgRec = 0;
  let effectiveOrder = 0;
  for (let i = 0; i < CHAR_ORDER; i++) {
    const [hyp, ref, match] = [stats[3 * i]!, stats[3 * i + 1]!, stats[3 * i + 2]!];
    const prec = hyp > 0 ? match / hyp : eps;
    const rec = ref > 0 ? match / ref : eps;
    if (hyp > 0 && ref > 0) {
      avgPrec += prec;
      avgRec += rec;
      effectiveOrder += 1;
    }
  }
  if (effectiveOrder === 0) return 0;
  avgPrec /= effectiveOrder;
  avgRec /= effectiveOrder;
  if (avgPrec + avgRec === 0) return 0;
  return (100 * ((1 + factor) * avgPrec * avgRec)) / (factor * avgPrec + avgRec);
}

export function chrfSegmentStats(hypothesis: string, references: string[]): number[] {
  const hyp = charNgrams(hypothesis);
  let best: number[] = [];
  let bestScore = -1;
  for (const reference of references) {
    const ref = charNgrams(reference);
    const stats: number[] = [];
    for (let n = 0; n < CHAR_ORDER; n++) {
      let hypCount = 0;
      let match = 0;
      for (const [g, c] of hyp[n]!) {
        hypCount += c;
        const r = ref[n]!.get(g);
        if (r !== undefined) match += Math.min(c, r);
      }
      let refCount = 0;
      for (const c of ref[n]!.values()) refCount += c;
      // sacrebleu counts no hypothesis n-grams when the reference has none of that order.
      stats.push(ref[n]!.size > 0 ? hypCount : 0, refCount, match);
    }
    const score = chrfFromStats(stats);
    if (score > bestScore) {
      bestScore = score;
      best = stats;
    }
  }
  return best;
}
