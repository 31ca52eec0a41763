/**
 * Perplexity and KL-divergence arithmetic, written to reproduce llama.cpp's
 * tools/perplexity/perplexity.cpp operation by operation (float where it uses float,
 * double where it uses double), so that our figures equal llama-perplexity's.
 * Pure: no I/O, no llama.cpp.
 */

const f32 = Math.fround;

/** Running sum of negative log-likelihoods, as perplexity() keeps `nll`, `nll2` and `count`. */
export class NllAccumulator {
  sum = 0;
  sumSquares = 0;
  count = 0;

  add(nll: number): void {
    this.sum += nll;
    this.sumSquares += nll * nll;
    this.count += 1;
  }

  /** exp(mean NLL); NaN before the first token. */
  get ppl(): number {
    return Math.exp(this.sum / this.count);
  }

  /** llama-perplexity's ±: PPL times the standard error of the mean NLL; NaN when undefined. */
  get pplError(): number {
    return pplWithError(this.sum, this.sumSquares, this.count).error;
  }
}

export function pplWithError(sum: number, sumSquares: number, count: number): { ppl: number; error: number } {
  const mean = sum / count;
  const ppl = Math.exp(mean);
  const variance = sumSquares / count - mean * mean;
  // llama.cpp prints "Unexpected negative standard deviation" instead of a figure here.
  const error = variance > 0 && count > 1 ? Math.sqrt(variance / (count - 1)) * ppl : Number.NaN;
  return { ppl, error };
}

/**
 * NLL of the target from the three numbers llama.cpp's log_softmax() uses:
 * the target's logit, the row's maximum logit and sum(exp(logit - max)).
 */
export function nllFromLogitSummary(targetLogit: number, maxLogit: number, sumExp: number): number {
  return -(f32(targetLogit - maxLogit) - Math.log(sumExp));
}

/** log_softmax() over one full row: the target's NLL and the argmax (first maximum wins). */
export function rowNll(logits: Float32Array, target: number): { nll: number; argmax: number } {
  let max = logits[0]!;
  let argmax = 0;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      argmax = i;
    }
  }
  let sumExp = 0;
  for (let i = 0; i < logits.length; i++) sumExp += f32(Math.exp(f32(logits[i]! - max)));
  return { nll: nllFromLogitSummary(logits[target]!, max, sumExp), argmax };
}

/** Rounds to nearest, ties to even, as llama.cpp's nearest_int() magic-number trick does. */
export function nearestInt(value: number): number {
  const rounded = Math.round(value);
  if (Math.abs(value - Math.trunc(value)) === 0.5 && rounded % 2 !== 0) return rounded - 1;
  return rounded;
}

/** uint16 slots per stored row in a KLD base file: two floats (scale, min log-prob) then n_vocab rounded up to even. */
export function kldRowSlots(vocabSize: number): number {
  return 2 * Math.floor((vocabSize + 1) / 2) + 4;
}

/**
 * Quantises one row's log-probabilities into `out` (kldRowSlots(n) uint16 values) the way
 * llama-perplexity --kl-divergence-base stores them, and returns the target's NLL as it computes it then.
 */
export function quantizeLogProbRow(logits: Float32Array, target: number, out: Uint16Array): number {
  const n = logits.length;
  let max = logits[0]!;
  let min = logits[0]!;
  for (let i = 1; i < n; i++) {
    if (logits[i]! > max) max = logits[i]!;
    if (logits[i]! < min) min = logits[i]!;
  }
  min = Math.max(min, f32(max - 16));
  let sumExp = 0;
  for (let i = 0; i < n; i++) sumExp += f32(Math.exp(f32(logits[i]! - max)));
  const logSumExp = f32(Math.log(sumExp));
  const minLogProb = f32(f32(min - max) - logSumExp);
  const scale = f32(f32(max - min) / 65535);
  const header = new Float32Array(out.buffer, out.byteOffset, 2);
  header[0] = scale;
  header[1] = minLogProb;
  if (scale !== 0) {
    const invScale = f32(1 / scale);
    for (let i = 0; i < n; i++) out[4 + i] = logits[i]! > min ? nearestInt(f32(invScale * f32(logits[i]! - min))) : 0;
  } else {
    out.fill(0, 4, 4 + n);
  }
  return f32(f32(max + logSumExp) - logits[target]!);
}

/** The sums llama.cpp keeps in kl_divergence_result. */
export class KldAccumulator {
  sumNll = 0;
  sumNll2 = 0;
  sumNllBase = 0;
  sumNllBase2 = 0;
  sumNllNllBase = 0;
  sumKld = 0;
  sumKld2 = 0;
  sumPDiff = 0;
  sumPDiff2 = 0;
  sumPDiff4 = 0;
  maxPDiff = 0;
  sameTop = 0;
  /** How often the model's most likely token was the real next one. */
  correctTop = 0;
  count = 0;
  readonly kldValues: number[] = [];
  readonly pDiffValues: number[] = [];
  /** Each position's NLL under the model, in order (for the exact PPL ratio of --base). */
  readonly nllValues: number[] = [];

  /** One scored position: the model's logits against the base's stored row (kldRowSlots(n) uint16 values). */
  addRow(logits: Float32Array, baseRow: Uint16Array, target: number): void {
    const n = logits.length;
    let max = logits[0]!;
    let argmax = 0;
    for (let i = 1; i < n; i++) {
      if (logits[i]! > max) {
        max = logits[i]!;
        argmax = i;
      }
    }
    let sumExp = 0;
    for (let i = 0; i < n; i++) sumExp += f32(Math.exp(f32(logits[i]! - max)));
    const logSumExp = f32(Math.log(sumExp));
    const header = new Float32Array(baseRow.buffer, baseRow.byteOffset, 2);
    const scale = header[0]!;
    const minLogProb = header[1]!;

    const nll = f32(f32(max + logSumExp) - logits[target]!);
    this.nllValues.push(nll);
    this.sumNll += nll;
    this.sumNll2 += f32(nll * nll);
    const nllBase = -f32(f32(scale * baseRow[4 + target]!) + minLogProb);
    this.sumNllBase += nllBase;
    this.sumNllBase2 += f32(nllBase * nllBase);
    this.sumNllNllBase += f32(nll * nllBase);

    const logNorm = f32(max + logSumExp);
    let kld = 0;
    let argmaxBase = -1;
    let maxLogBase = 0;
    for (let i = 0; i < n; i++) {
      const logBase = f32(f32(scale * baseRow[4 + i]!) + minLogProb);
      if (i === 0 || logBase > maxLogBase) {
        maxLogBase = logBase;
        argmaxBase = i;
      }
      if (logBase > -16) {
        const pBase = f32(Math.exp(logBase));
        kld += f32(pBase * f32(f32(logBase - logits[i]!) + logNorm));
      }
    }
    this.sumKld += kld;
    this.sumKld2 += kld * kld;
    this.count += 1;
    if (argmax === argmaxBase) this.sameTop += 1;
    if (argmax === target) this.correctTop += 1;

    const pBase = f32(Math.exp(-nllBase));
    const p = f32(Math.exp(-nll));
    const pDiff = f32(p - pBase);
    this.sumPDiff += pDiff;
    const pDiff2 = f32(pDiff * pDiff);
    this.sumPDiff2 += pDiff2;
    this.sumPDiff4 += pDiff2 * pDiff2;
    this.maxPDiff = Math.max(this.maxPDiff, Math.abs(pDiff));
    this.kldValues.push(f32(kld));
    this.pDiffValues.push(pDiff);
  }
}

/** llama.cpp's mean_and_uncertainty(): the mean and its standard error (0 for 10 values or fewer). */
export function meanAndUncertainty(sum: number, sumSquares: number, count: number): { mean: number; error: number } {
  if (count < 1) return { mean: 0, error: 0 };
  const mean = sum / count;
  const variance = sumSquares / count - mean * mean;
  return { mean, error: variance > 0 && count > 10 ? Math.sqrt(variance / (count - 1)) : 0 };
}

/** llama.cpp's covariance() of two means (0 below 10 values). */
export function covariance(sumA: number, sumB: number, sumAB: number, count: number): number {
  if (count < 10) return 0;
  return (sumAB / count - (sumA / count) * (sumB / count)) / (count - 1);
}

/** Linear interpolation between order statistics of an ascending array, as llama.cpp's percentile lambda. */
export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (fraction <= 0) return sorted[0]!;
  if (fraction >= 1) return sorted[sorted.length - 1]!;
  let p = f32(fraction * (sorted.length - 1));
  const ip = Math.floor(p);
  p = f32(p - ip);
  return f32(f32((1 - p) * sorted[ip]!) + f32(p * sorted[Math.min(ip + 1, sorted.length - 1)]!));
}

export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 0 ? f32(0.5 * f32(sorted[n / 2]! + sorted[n / 2 - 1]!)) : sorted[Math.floor(n / 2)]!;
}

export const KLD_PERCENTILES = [0.999, 0.99, 0.95, 0.9, 0.1, 0.05, 0.01, 0.001] as const;
export const PDIFF_PERCENTILES = [0.999, 0.99, 0.95, 0.9, 0.75, 0.25, 0.1, 0.05, 0.01, 0.001] as const;

export interface ValueWithError {
  value: number;
  error: number;
}

export interface KldStatistics {
  tokens: number;
  pplQ: ValueWithError;
  pplBase: ValueWithError;
  /** Correlation of ln PPL(Q) and ln PPL(base), as a fraction. */
  lnPplCorrelation: number;
  lnPplRatio: ValueWithError;
  pplRatio: ValueWithError;
  pplDiff: ValueWithError;
  kld: ValueWithError & { max: number; median: number; min: number; percentiles: Record<string, number> };
  /** Δp = p(Q) − p(base) of the real next token, as fractions (not percent). */
  deltaP: ValueWithError & { max: number; median: number; min: number; percentiles: Record<string, number>; rms: ValueWithError };
  sameTop: ValueWithError;
  top1Accuracy: number;
}

function percentileKey(fraction: number): string {
  return `${+(fraction * 100).toFixed(1)}`;
}

/** The statistics llama-perplexity --kl-divergence prints after the last chunk. */
export function kldStatistics(acc: KldAccumulator): KldStatistics {
  const count = acc.count;
  const lnPpl = meanAndUncertainty(acc.sumNll, acc.sumNll2, count);
  const pplValue = Math.exp(lnPpl.mean);
  const pplError = pplValue * lnPpl.error;
  const lnPplBase = meanAndUncertainty(acc.sumNllBase, acc.sumNllBase2, count);
  const pplBaseValue = Math.exp(lnPplBase.mean);
  const pplBaseError = pplBaseValue * lnPplBase.error;
  const lnCov = covariance(acc.sumNll, acc.sumNllBase, acc.sumNllNllBase, count);
  const lnRatio = lnPpl.mean - lnPplBase.mean;
  const lnRatioError = Math.sqrt(lnPpl.error ** 2 + lnPplBase.error ** 2 - 2 * lnCov);
  const ratio = Math.exp(lnRatio);
  const pplCov = pplValue * pplBaseValue * lnCov;

  const kldSorted = [...acc.kldValues].sort((a, b) => a - b);
  const pDiffSorted = [...acc.pDiffValues].sort((a, b) => a - b);
  const kld = meanAndUncertainty(acc.sumKld, acc.sumKld2, count);
  const pDiff = meanAndUncertainty(acc.sumPDiff, acc.sumPDiff2, count);
  const pDiffMse = meanAndUncertainty(acc.sumPDiff2, acc.sumPDiff4, count);
  const rms = Math.sqrt(pDiffMse.mean);
  const sameTop = acc.sameTop / count;
  return {
    tokens: count,
    pplQ: { value: pplValue, error: pplError },
    pplBase: { value: pplBaseValue, error: pplBaseError },
    lnPplCorrelation: lnCov / (lnPpl.error * lnPplBase.error),
    lnPplRatio: { value: lnRatio, error: lnRatioError },
    pplRatio: { value: ratio, error: ratio * lnRatioError },
    pplDiff: { value: pplValue - pplBaseValue, error: Math.sqrt(pplError ** 2 + pplBaseError ** 2 - 2 * pplCov) },
    kld: {
      value: kld.mean,
      error: kld.error,
      max: kldSorted[kldSorted.length - 1] ?? Number.NaN,
      median: median(kldSorted),
      min: kldSorted[0] ?? Number.NaN,
      percentiles: Object.fromEntries(KLD_PERCENTILES.map((f) => [percentileKey(f), percentile(kldSorted, f)])),
    },
    deltaP: {
      value: pDiff.mean,
      error: pDiff.error,
      max: pDiffSorted[pDiffSorted.length - 1] ?? Number.NaN,
      median: median(pDiffSorted),
      min: pDiffSorted[0] ?? Number.NaN,
      percentiles: Object.fromEntries(PDIFF_PERCENTILES.map((f) => [percentileKey(f), percentile(pDiffSorted, f)])),
      rms: { value: rms, error: (0.5 / rms) * pDiffMse.error },
    },
    sameTop: { value: sameTop, error: Math.sqrt((sameTop * (1 - sameTop)) / (count - 1)) },
    top1Accuracy: acc.correctTop / count,
  };
}

/**
 * PPL(Q)/PPL(base) from both models' exact per-token NLLs (paired, so the ± uses their covariance).
 * llama-perplexity's own ratio takes PPL(base) from the stored log-probs, which are clamped at
 * 16 below the row's maximum and so understate rare tokens' NLL; --base has the exact values.
 */
export function pairedPplRatio(baseNll: ArrayLike<number>, modelNll: ArrayLike<number>): { ratio: ValueWithError; lnRatio: ValueWithError } {
  const n = Math.min(baseNll.length, modelNll.length);
  let sumA = 0;
  let sumA2 = 0;
  let sumB = 0;
  let sumB2 = 0;
  let sumAB = 0;
  for (let i = 0; i < n; i++) {
    const a = modelNll[i]!;
    const b = baseNll[i]!;
    sumA += a;
    sumA2 += a * a;
    sumB += b;
    sumB2 += b * b;
    sumAB += a * b;
  }
  const lnQ = meanAndUncertainty(sumA, sumA2, n);
  const lnBase = meanAndUncertainty(sumB, sumB2, n);
  const lnRatio = lnQ.mean - lnBase.mean;
  const lnRatioError = Math.sqrt(Math.max(0, lnQ.error ** 2 + lnBase.error ** 2 - 2 * covariance(sumA, sumB, sumAB, n)));
  const ratio = Math.exp(lnRatio);
  return { ratio: { value: ratio, error: ratio * lnRatioError }, lnRatio: { value: lnRatio, error: lnRatioError } };
}
