import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import { buildBenchParams, expandInstances, parseFlashAttn, parseIntRange, sweptColumns, testName } from "../../src/bench/sweep.js";

describe("llama-bench value syntax", () => {
  it("single values, comma lists and ranges", () => {
    expect(parseIntRange("512", "-p")).toEqual([512]);
    expect(parseIntRange("1,2,4", "-t")).toEqual([1, 2, 4]);
    expect(parseIntRange("1-4", "-t")).toEqual([1, 2, 3, 4]);
    expect(parseIntRange("1-8+3", "-t")).toEqual([1, 4, 7]);
    expect(parseIntRange("16-128*2", "-p")).toEqual([16, 32, 64, 128]);
    expect(parseIntRange("1-2,8,64-256*4", "-b")).toEqual([1, 2, 8, 64, 256]);
    expect(parseIntRange("-1", "-ngl", true)).toEqual([-1]);
  });

  it("rejects what llama-bench rejects", () => {
    for (const bad of ["x", "1,", "4-1", "1-4*1", "1-4+0", "1.5", "", "-1"]) {
      expect(() => parseIntRange(bad, "-t"), bad).toThrow(UsageError);
    }
  });

  it("flash attention values", () => {
    expect(parseFlashAttn("on,off,auto")).toEqual([1, 0, -1]);
    expect(() => parseFlashAttn("maybe")).toThrow(UsageError);
  });
});

describe("sweeps", () => {
  const defaults = { threads: 1 };

  it("defaults are llama-bench's: pp512 and tg128, five repetitions", () => {
    const params = buildBenchParams(["m.gguf"], {}, defaults);
    expect(params).toMatchObject({ nPrompt: [512], nGen: [128], nBatch: [2048], nUbatch: [512], repetitions: 5, nThreads: [1], flashAttn: [-1] });
    expect(expandInstances(params).map(testName)).toEqual(["pp512", "tg128"]);
  });

  it("every combination, in llama-bench's order (model, ..., threads, depth; then pp, tg, pg)", () => {
    const params = buildBenchParams(["a.gguf", "b.gguf"], { threads: ["1,2"], nPrompt: ["16"], nGen: ["8"], pg: ["16,8"], nDepth: ["0,32"] }, defaults);
    const instances = expandInstances(params);
    expect(instances).toHaveLength(2 * 2 * 2 * 3);
    expect(instances.slice(0, 6).map((i) => `${i.model} t${i.nThreads} ${testName(i)}`)).toEqual([
      "a.gguf t1 pp16",
      "a.gguf t1 tg8",
      "a.gguf t1 pp16+tg8",
      "a.gguf t1 pp16 @ d32",
      "a.gguf t1 tg8 @ d32",
      "a.gguf t1 pp16+tg8 @ d32",
    ]);
    expect(instances[6]).toMatchObject({ model: "a.gguf", nThreads: 2, nPrompt: 16, nGen: 0, nDepth: 0 });
    expect(instances[12]!.model).toBe("b.gguf");
  });

  it("-p 0 / -n 0 skip a kind of test only when another kind is asked for", () => {
    expect(expandInstances(buildBenchParams(["m"], { nPrompt: ["0"], nGen: ["64"] }, defaults)).map(testName)).toEqual(["tg64"]);
    expect(() => buildBenchParams(["m"], { nPrompt: ["0"] }, defaults)).toThrow(/-p 0/);
    expect(() => buildBenchParams(["m"], { nGen: ["0"] }, defaults)).toThrow(/-n 0/);
  });

  it("bad values are usage errors", () => {
    expect(() => buildBenchParams(["m"], { threads: ["x"] }, defaults)).toThrow(UsageError);
    expect(() => buildBenchParams(["m"], { threads: ["0"] }, defaults)).toThrow(/at least 1/);
    expect(() => buildBenchParams(["m"], { repetitions: "0" }, defaults)).toThrow(/-r/);
    expect(() => buildBenchParams(["m"], { repetitions: "2,3" }, defaults)).toThrow(/-r/);
    expect(() => buildBenchParams(["m"], { pg: ["512"] }, defaults)).toThrow(/-pg/);
    expect(() => buildBenchParams(["m"], { cacheTypeK: ["q9_9"] }, defaults)).toThrow(/cache type/);
    expect(() => buildBenchParams([], {}, defaults)).toThrow(/no model/);
  });

  it("the markdown shows threads on CPU, and other columns only when swept or not default", () => {
    expect(sweptColumns(buildBenchParams(["m"], {}, defaults), defaults, true)).toEqual(["n_threads"]);
    expect(sweptColumns(buildBenchParams(["m"], {}, defaults), defaults, false)).toEqual(["n_gpu_layers"]);
    expect(sweptColumns(buildBenchParams(["m"], { batchSize: ["64"], flashAttn: ["on,off"], cacheTypeK: ["q8_0"] }, defaults), defaults, true)).toEqual([
      "n_threads",
      "n_batch",
      "type_k",
      "flash_attn",
    ]);
  });
});
