/** Pure statistics, as llama-bench computes them (tools/llama-bench/llama-bench.cpp: avg, stdev). */

export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Sample standard deviation (n - 1); 0 for fewer than two values, as llama-bench prints it. */
export function sampleStdDev(values: readonly number[]): number {
  if (values.length <= 1) return 0;
  const m = mean(values);
  let squares = 0;
  for (const v of values) squares += (v - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Coefficient of variation (sd / mean); 0 when the mean is 0. */
export function coefficientOfVariation(values: readonly number[]): number {
  const m = mean(values);
  return m === 0 ? 0 : sampleStdDev(values) / m;
}

/** Tokens per second of each repetition, from its duration in nanoseconds. */
export function tokensPerSecond(tokens: number, samplesNs: readonly number[]): number[] {
  return samplesNs.map((ns) => (1e9 * tokens) / ns);
}

/**
 * Welch's t statistic for the difference of two means (b - a), from their means, sds and counts.
 * Returns 0 when both spreads are 0 and the means are equal, ±Infinity when only the means differ.
 */
export function welchT(a: { mean: number; sd: number; n: number }, b: { mean: number; sd: number; n: number }): number {
  const se = Math.sqrt((a.n > 0 ? a.sd ** 2 / a.n : 0) + (b.n > 0 ? b.sd ** 2 / b.n : 0));
  const diff = b.mean - a.mean;
  if (se === 0) return diff === 0 ? 0 : diff > 0 ? Infinity : -Infinity;
  return diff / se;
}
