import { describe, expect, it } from "vitest";
import { coefficientOfVariation, mean, median, sampleStdDev, tokensPerSecond, welchT } from "../../src/bench/stats.js";

describe("bench statistics", () => {
  it("mean of per-repetition values", () => {
    expect(mean([1, 2, 3, 4])).toBe(2.5);
    expect(mean([])).toBe(0);
  });

  it("sample standard deviation divides by n - 1, as llama-bench's stdev does", () => {
    // Hand-computed: deviations from 5 squared sum to 32; 32 / 7 = 4.571428...; sqrt = 2.138089935...
    expect(sampleStdDev([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2.138089935, 8);
    // 1,2,3,4: squares of deviations 2.25+0.25+0.25+2.25 = 5; 5/3; sqrt = 1.290994449
    expect(sampleStdDev([1, 2, 3, 4])).toBeCloseTo(1.290994449, 8);
    expect(sampleStdDev([42])).toBe(0);
    expect(sampleStdDev([])).toBe(0);
  });

  it("t/s of each repetition from nanoseconds, then mean ± sd of those (not tokens / mean time)", () => {
    const ts = tokensPerSecond(512, [1e9, 2e9, 4e9]);
    expect(ts).toEqual([512, 256, 128]);
    expect(mean(ts)).toBeCloseTo(298.6666667, 6);
    // deviations 213.333, -42.667, -170.667; squares sum 76458.67; / 2; sqrt = 195.5232297
    expect(sampleStdDev(ts)).toBeCloseTo(195.5232297, 6);
  });

  it("median and coefficient of variation", () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(coefficientOfVariation([1, 2, 3, 4])).toBeCloseTo(1.290994449 / 2.5, 8);
  });

  it("Welch's t for the difference of two means", () => {
    // (110 - 100) / sqrt(4/4 + 4/4) = 10 / sqrt(2)
    expect(welchT({ mean: 100, sd: 2, n: 4 }, { mean: 110, sd: 2, n: 4 })).toBeCloseTo(7.0710678, 6);
    expect(welchT({ mean: 100, sd: 0, n: 3 }, { mean: 100, sd: 0, n: 3 })).toBe(0);
    expect(welchT({ mean: 100, sd: 0, n: 3 }, { mean: 90, sd: 0, n: 3 })).toBe(-Infinity);
  });
});
