import { describe, expect, it } from "vitest";
import {
  covariance,
  KldAccumulator,
  kldRowSlots,
  kldStatistics,
  meanAndUncertainty,
  median,
  nearestInt,
  NllAccumulator,
  nllFromLogitSummary,
  pairedPplRatio,
  percentile,
  pplWithError,
  quantizeLogProbRow,
  rowNll,
} from "../../src/eval/math.js";
import { formatEta, formatFinalEstimate, formatKldStatistics } from "../../src/eval/format.js";
import { planChunks, decodeCorpus } from "../../src/eval/corpus.js";

describe("NLL accumulation and the ± of llama-perplexity", () => {
  it("PPL = exp(mean NLL); ± = PPL·sqrt((E[x²]−E[x]²)/(n−1))", () => {
    const acc = new NllAccumulator();
    for (const v of [1, 2, 3, 4]) acc.add(v);
    // mean 2.5, E[x²] = 7.5, variance 1.25, /(n−1) = 0.41667
    expect(acc.count).toBe(4);
    expect(acc.ppl).toBeCloseTo(Math.exp(2.5), 12);
    expect(acc.pplError).toBeCloseTo(Math.exp(2.5) * Math.sqrt(1.25 / 3), 12);
    expect(pplWithError(10, 30, 4).error).toBeCloseTo(Math.exp(2.5) * Math.sqrt(1.25 / 3), 12);
  });

  it("gives no ± for identical values (llama.cpp refuses a zero variance)", () => {
    expect(Number.isNaN(pplWithError(4, 8, 2).error)).toBe(true);
  });

  it("computes a row's NLL like log_softmax and finds the first maximum", () => {
    const row = new Float32Array([0, Math.log(3), 0, Math.log(3)]);
    // p = [1/8, 3/8, 1/8, 3/8]
    const { nll, argmax } = rowNll(row, 0);
    expect(nll).toBeCloseTo(Math.log(8), 6);
    expect(argmax).toBe(1);
    expect(nllFromLogitSummary(Math.log(3), Math.log(3), 8 / 3)).toBeCloseTo(Math.log(8 / 3), 6);
  });
});

describe("KLD base-file rows", () => {
  it("rounds half to even like nearest_int()", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(nearestInt)).toEqual([0, 2, 2, -0, -2, 2, 3]);
  });

  it("stores scale and min log-prob and reconstructs log-probabilities within one step", () => {
    const logits = new Float32Array([2, 1, 0, -30, 0.5]);
    const row = new Uint16Array(kldRowSlots(logits.length));
    expect(row.length).toBe(2 * 3 + 4);
    const nll = quantizeLogProbRow(logits, 1, row);
    const header = new Float32Array(row.buffer, 0, 2);
    const lse = Math.log([...logits].reduce((s, l) => s + Math.exp(l - 2), 0)) + 2;
    expect(nll).toBeCloseTo(lse - 1, 5);
    expect(header[0]).toBeCloseTo(16 / 65535, 9); // range clamped to max − 16
    for (const i of [0, 1, 2, 4]) expect(header[0]! * row[4 + i]! + header[1]!).toBeCloseTo(logits[i]! - lse, 3);
    expect(row[4 + 3]).toBe(0); // below max − 16: stored as the minimum
  });

  it("gives zero KLD, Δp and 100% same-top for a model against its own row", () => {
    const logits = new Float32Array([1, 3, 0.5, 2]);
    const row = new Uint16Array(kldRowSlots(4));
    quantizeLogProbRow(logits, 3, row);
    const acc = new KldAccumulator();
    for (let i = 0; i < 20; i++) acc.addRow(logits, row, i % 2 === 0 ? 3 : 1);
    expect(acc.count).toBe(20);
    expect(Math.abs(acc.sumKld / acc.count)).toBeLessThan(1e-6);
    expect(acc.sameTop).toBe(20);
    expect(acc.correctTop).toBe(10);
    expect(Math.abs(acc.sumPDiff / acc.count)).toBeLessThan(1e-4);
  });

  it("matches the closed-form KL divergence of two distributions", () => {
    const p = [0.5, 0.25, 0.125, 0.125];
    const q = [0.25, 0.25, 0.25, 0.25];
    const base = new Uint16Array(kldRowSlots(4));
    quantizeLogProbRow(new Float32Array(p.map(Math.log)), 0, base);
    const acc = new KldAccumulator();
    acc.addRow(new Float32Array(q.map(Math.log)), base, 0);
    const exact = p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]!), 0); // 0.25·ln2
    expect(acc.sumKld).toBeCloseTo(exact, 4);
    expect(acc.pDiffValues[0]).toBeCloseTo(0.25 - 0.5, 4);
    expect(acc.sameTop).toBe(1); // both argmaxes are token 0 (q ties: the first maximum wins)
  });
});

describe("statistics helpers", () => {
  it("percentiles interpolate between order statistics like llama.cpp", () => {
    const v = [1, 2, 3, 4, 5];
    expect(percentile(v, 0)).toBe(1);
    expect(percentile(v, 1)).toBe(5);
    expect(percentile(v, 0.5)).toBe(3);
    expect(percentile(v, 0.9)).toBeCloseTo(4.6, 5);
    expect(percentile(v, 0.1)).toBeCloseTo(1.4, 5);
    expect(median([1, 2, 3, 4])).toBe(2.5);
    expect(median([1, 2, 3])).toBe(2);
  });

  it("mean ± is zero for 10 values or fewer and the SE above", () => {
    expect(meanAndUncertainty(10, 30, 4)).toEqual({ mean: 2.5, error: 0 });
    const values = Array.from({ length: 11 }, (_, i) => i);
    const sum = values.reduce((a, b) => a + b, 0);
    const sum2 = values.reduce((a, b) => a + b * b, 0);
    const r = meanAndUncertainty(sum, sum2, 11);
    expect(r.mean).toBe(5);
    expect(r.error).toBeCloseTo(Math.sqrt(10 / 10), 10); // population variance 10, /(n−1)
    expect(covariance(1, 1, 1, 5)).toBe(0);
  });

  it("pairs per-token NLLs for the PPL ratio", () => {
    const base = Array.from({ length: 50 }, (_, i) => 2 + Math.sin(i));
    const model = base.map((x) => x + 0.1);
    const { ratio, lnRatio } = pairedPplRatio(base, model);
    expect(lnRatio.value).toBeCloseTo(0.1, 10);
    expect(ratio.value).toBeCloseTo(Math.exp(0.1), 10);
    expect(lnRatio.error).toBeLessThan(1e-6); // a constant shift: perfectly correlated
  });

  it("builds llama-perplexity's statistics blocks", () => {
    const acc = new KldAccumulator();
    const row = new Uint16Array(kldRowSlots(3));
    for (let i = 0; i < 120; i++) {
      const base = new Float32Array([Math.sin(i), Math.cos(i), 0]);
      quantizeLogProbRow(base, i % 3, row);
      acc.addRow(new Float32Array([Math.sin(i) + 0.1, Math.cos(i), 0.05]), row, i % 3);
    }
    const stats = kldStatistics(acc);
    expect(stats.tokens).toBe(120);
    expect(stats.kld.value).toBeGreaterThan(0);
    expect(stats.kld.percentiles["99.9"]).toBeGreaterThanOrEqual(stats.kld.percentiles["90"]!);
    const text = formatKldStatistics(stats);
    expect(text).toMatch(/^====== Perplexity statistics ======\nMean PPL\(Q\)                   : +\d+\.\d{6} ± +\d+\.\d{6}\n/);
    expect(text).toContain("\n 5.0%   KLD: ");
    expect(text).toMatch(/\nSame top p: +\d+\.\d{3} ± +\d+\.\d{3} %\n$/);
  });
});

describe("formats and chunk plans", () => {
  it("prints the final line and ETA with llama-perplexity's printf formats", () => {
    expect(formatFinalEstimate(187.73891, 4.926481)).toBe("Final estimate: PPL = 187.7389 +/- 4.92648");
    expect(formatEta(1.04, 100)).toBe("1.04 seconds per pass - ETA 1.73 minutes");
    expect(formatEta(40, 100)).toBe("40.00 seconds per pass - ETA 1 hours 6.67 minutes");
  });

  it("lays out chunks as llama-perplexity and refuses short texts with the counts", () => {
    expect(planChunks(809246, 512)).toEqual({ ctx: 512, chunks: 1580, first: 256, scoredPerChunk: 255 });
    expect(planChunks(809246, 512, 100).chunks).toBe(100);
    expect(() => planChunks(1000, 512)).toThrow(/tokenises to 1000 tokens.*needs at least 1024/);
  });

  it("suggests a smaller -c only when -c can be that small (at least 16): a short text is told to grow", () => {
    const hint = (tokens: number, ctx: number) => {
      try {
        planChunks(tokens, ctx);
      } catch (error) {
        return (error as { hint?: string }).hint;
      }
      return undefined;
    };
    expect(hint(1000, 512)).toBe("Give a longer text or a smaller -c (at most 500)");
    expect(hint(8, 512)).toBe("Give a longer text: at least 32 tokens, for the smallest -c (16)");
  });

  it("decodes UTF-8, drops one trailing newline, refuses empty and invalid input", () => {
    expect(decodeCorpus(Buffer.from("héllo\n\n"), "x")).toBe("héllo\n");
    expect(() => decodeCorpus(Buffer.alloc(0), "f.txt")).toThrow(/f.txt is empty/);
    expect(() => decodeCorpus(Buffer.from([0x61, 0x62, 0xff, 0x63]), "f.txt")).toThrow(/not valid UTF-8 \(first bad byte at offset 2\)/);
  });
});
