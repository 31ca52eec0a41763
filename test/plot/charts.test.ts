import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { benchCompareSpec, benchSweepSpec, sweptAxis, type PlotRecord } from "../../src/plot/benchCharts.js";
import { perplexitySpec, splitPasses } from "../../src/plot/perplexityCharts.js";
import { chartFormat, writeChart } from "../../src/plot/render.js";
import { terminalSweepChart } from "../../src/plot/terminalChart.js";
import { parseSvg, pngSize } from "./chartFiles.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-plot-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function record(model: string, threads: number, nPrompt: number, nGen: number, ts: number, sd = ts / 20): PlotRecord {
  return { model_filename: model, n_prompt: nPrompt, n_gen: nGen, n_depth: 0, n_threads: threads, n_batch: 2048, n_ubatch: 512, type_k: "f16", type_v: "f16", flash_attn: -1, n_gpu_layers: 99, avg_ts: ts, stddev_ts: sd };
}

const sweep = ["/m/q4_0.gguf", "/m/q8_0.gguf"].flatMap((model, m) =>
  [1, 2, 4].flatMap((t) => [record(model, t, 512, 0, 100 * t + m * 7), record(model, t, 0, 128, 10 * t + m)]),
);

describe("bench charts", () => {
  it("draws a thread sweep as one line per model and test, with the axes titled in their units", async () => {
    expect(sweptAxis(sweep)?.field).toBe("n_threads");
    const file = path.join(dir, "sweep.svg");
    await writeChart(file, benchSweepSpec(sweep));
    const { texts, width } = parseSvg(file);
    expect(width).toBeGreaterThan(300);
    expect(texts).toEqual(expect.arrayContaining(["CPU threads", "speed (tokens/s)", "q4_0.gguf · pp512", "q4_0.gguf · tg128", "q8_0.gguf · pp512", "q8_0.gguf · tg128"]));
    // Every swept value is a tick, and nothing between them.
    expect(texts.filter((t) => ["1", "2", "3", "4"].includes(t))).toEqual(["1", "2", "4"]);
  });

  it("a prompt-length sweep leaves out the tg tests (their n_prompt is 0) and names its axis", async () => {
    const records = [128, 256, 512].flatMap((p) => [record("/m/a.gguf", 2, p, 0, 1000 / p), record("/m/a.gguf", 2, 0, 64, 30)]);
    const file = path.join(dir, "prompt.svg");
    await writeChart(file, benchSweepSpec(records));
    const { texts } = parseSvg(file);
    expect(texts).toContain("prompt length (tokens)");
    expect(texts).toContain("a.gguf · pp");
    expect(texts.some((t) => t.includes("tg"))).toBe(false);
  });

  it("draws --compare as grouped bars of both runs, as PNG", async () => {
    const file = path.join(dir, "compare.png");
    const before = sweep.map((r) => ({ ...r, avg_ts: r.avg_ts * 0.9 }));
    await writeChart(file, benchCompareSpec(before, sweep, "before.json"));
    const { width, height } = pngSize(file);
    expect(width).toBeGreaterThan(600);
    expect(height).toBeGreaterThan(300);
    const svgFile = path.join(dir, "compare.svg");
    await writeChart(svgFile, benchCompareSpec(before, sweep, "before.json"));
    const { texts } = parseSvg(svgFile);
    expect(texts).toEqual(expect.arrayContaining(["before.json", "this run", "q4_0.gguf pp512 t4", "speed (tokens/s)", "model, test, threads"]));
  });

  it("refuses a file that is neither .svg nor .png before any work", () => {
    expect(() => chartFormat("chart.jpg")).toThrow(/--plot chart\.jpg: the file must end in \.svg or \.png/);
    expect(chartFormat("A.PNG")).toBe("png");
  });

  it("prints a compact sweep chart for a terminal: a bar per value, scaled to the line's fastest", () => {
    const chart = terminalSweepChart(sweep, false)!;
    const lines = chart.trimEnd().split("\n");
    expect(lines[0]).toBe("t/s by CPU threads (1, 2, 4):");
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/^ {2}q4_0\.gguf pp512 +▃▅█ {2}100–400$/);
    expect(chart).not.toMatch(/\x1b\[/);
    expect(terminalSweepChart(sweep, true)).toMatch(/\x1b\[36m/);
    expect(terminalSweepChart([record("/m/a.gguf", 2, 512, 0, 5)], false)).toBeUndefined();
  });
});

describe("perplexity charts", () => {
  it("splits chunk events into one series per pass, base first", () => {
    const events = [1, 2, 3, 1, 2, 3].map((chunk, i) => ({ chunk, ppl: 10 + i }));
    expect(splitPasses(events, ["base", "q4"]).map((s) => [s.model, s.points.length])).toEqual([["base", 3], ["q4", 3]]);
  });

  it("draws PPL over the chunks and, with a base, the KLD distribution", async () => {
    const series = splitPasses([1, 2, 3, 1, 2, 3].map((chunk, i) => ({ chunk, ppl: 10 + (i % 3) })), ["F16", "Q4_0"]);
    const kld = { mean: 0.02, error: 0.001, min: 0, max: 1.5, median: 0.01, percentiles: { "99.9": 0.9, "99": 0.4, "95": 0.1, "90": 0.05, "10": 0.001, "5": 0.0005, "1": 0.0001, "0.1": 0 } };
    const file = path.join(dir, "ppl.svg");
    await writeChart(file, perplexitySpec(series, 512, [{ model: "Q4_0", kld }]));
    const { texts } = parseSvg(file);
    expect(texts).toEqual(expect.arrayContaining(["chunk (512 tokens each)", "perplexity (PPL)", "F16", "Q4_0", "percentile of the scored tokens (%)", "KL divergence (nats, symlog scale)"]));
    const plain = path.join(dir, "ppl-only.svg");
    await writeChart(plain, perplexitySpec(series.slice(0, 1), 512));
    expect(parseSvg(plain).texts.some((t) => t.startsWith("KL divergence"))).toBe(false);
  });
});
