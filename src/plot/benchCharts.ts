import path from "node:path";
import type { ComparableRecord } from "../bench/compare.js";
import { testName } from "../bench/sweep.js";
import type { ChartSpec } from "./render.js";

/** What a bench chart needs of a record (lmrun's and llama-bench's -o json records have it). */
export type PlotRecord = ComparableRecord & { build_commit?: string };

/** The dimensions a sweep can run along, with the axis title (and unit) each gets. */
const SWEEP_AXES = [
  { field: "n_threads", title: "CPU threads" },
  { field: "n_batch", title: "batch size (tokens)" },
  { field: "n_ubatch", title: "micro-batch size (tokens)" },
  { field: "n_prompt", title: "prompt length (tokens)" },
  { field: "n_gen", title: "generation length (tokens)" },
  { field: "n_depth", title: "context depth (tokens)" },
] as const;
type SweepField = (typeof SWEEP_AXES)[number]["field"];

const SPEED_TITLE = "speed (tokens/s)";

function recordTest(r: PlotRecord): string {
  return testName({ nPrompt: r.n_prompt, nGen: r.n_gen, nDepth: r.n_depth });
}

/** The swept dimension: the first one along which the records take several values. */
export function sweptAxis(records: readonly PlotRecord[]): (typeof SWEEP_AXES)[number] | undefined {
  return SWEEP_AXES.find(({ field }) => new Set(records.map((r) => r[field])).size > 1);
}

/** One line per model (and build, when several are in the records) and kind of test (pp / tg). */
function seriesName(r: PlotRecord, field: SweepField, manyBuilds: boolean): string {
  const kind = field === "n_prompt" ? `pp${r.n_gen > 0 ? `+tg${r.n_gen}` : ""}` : field === "n_gen" ? `tg${r.n_prompt > 0 ? `+pp${r.n_prompt}` : ""}` : recordTest(r);
  return [path.basename(r.model_filename), kind, manyBuilds && r.build_commit ? r.build_commit : undefined].filter(Boolean).join(" · ");
}

/**
 * A sweep as lines: tokens/s against the swept dimension, one line per model/build and test, with
 * error bars of ± one standard deviation of the repetitions. Records that do not vary along the
 * axis (a tg test in a prompt-length sweep has n_prompt 0) are left out of it.
 */
export function benchSweepSpec(records: readonly PlotRecord[], title = "lmrun bench"): ChartSpec {
  const axis = sweptAxis(records);
  if (axis === undefined) return benchBarsSpec(records.map((r) => ({ ...r, run: "this run" })), title);
  const manyBuilds = new Set(records.map((r) => r.build_commit)).size > 1;
  const rows = records
    .filter((r) => !((axis.field === "n_prompt" && r.n_prompt === 0) || (axis.field === "n_gen" && r.n_gen === 0)))
    .map((r) => ({ x: r[axis.field], speed: r.avg_ts, low: Math.max(0, r.avg_ts - r.stddev_ts), high: r.avg_ts + r.stddev_ts, series: seriesName(r, axis.field, manyBuilds) }));
  const x = { field: "x", type: "quantitative", title: axis.title, scale: { zero: false, nice: false }, axis: { values: [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b), format: "d" } };
  const color = { field: "series", type: "nominal", title: "model · test" };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `${title}: ${SPEED_TITLE} by ${axis.title.replace(/ \(.*\)$/, "")}`,
    width: 560,
    height: 320,
    data: { values: rows },
    layer: [
      { mark: { type: "line", point: true }, encoding: { x, y: { field: "speed", type: "quantitative", title: SPEED_TITLE }, color } },
      { mark: { type: "errorbar", ticks: true }, encoding: { x, y: { field: "low", type: "quantitative", title: SPEED_TITLE }, y2: { field: "high" }, color } },
    ],
  };
}

/** Grouped bars: one group per test, one bar per run, error bars of ± one standard deviation. */
function benchBarsSpec(rows: readonly (PlotRecord & { run: string })[], title: string, runOrder?: string[]): ChartSpec {
  const values = rows.map((r) => ({
    test: `${path.basename(r.model_filename)} ${recordTest(r)} t${r.n_threads}`,
    run: r.run,
    speed: r.avg_ts,
    low: Math.max(0, r.avg_ts - r.stddev_ts),
    high: r.avg_ts + r.stddev_ts,
  }));
  const x = { field: "test", type: "nominal", title: "model, test, threads", axis: { labelAngle: -20, labelLimit: 260 } };
  const runs = { field: "run", type: "nominal", title: "run", ...(runOrder ? { sort: runOrder, scale: { domain: runOrder } } : {}) };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `${title}: ${SPEED_TITLE}, mean ± sd of the repetitions`,
    width: { step: 22 * Math.max(1, new Set(values.map((v) => v.run)).size) },
    height: 320,
    data: { values },
    encoding: { x, xOffset: { field: "run", type: "nominal", ...(runOrder ? { sort: runOrder } : {}) } },
    layer: [
      { mark: "bar", encoding: { y: { field: "speed", type: "quantitative", title: SPEED_TITLE }, color: runs } },
      { mark: { type: "errorbar", ticks: true, color: "black" }, encoding: { y: { field: "low", type: "quantitative", title: SPEED_TITLE }, y2: { field: "high" } } },
    ],
  };
}

/** `--compare`: the earlier run and this one side by side for each test both have. */
export function benchCompareSpec(oldRecords: readonly PlotRecord[], newRecords: readonly PlotRecord[], oldLabel: string, title = "lmrun bench --compare"): ChartSpec {
  const key = (r: PlotRecord) => [path.basename(r.model_filename), r.n_prompt, r.n_gen, r.n_depth, r.n_threads, r.n_batch, r.n_ubatch, r.type_k, r.type_v, r.flash_attn, r.n_gpu_layers].join("|");
  const newKeys = new Set(newRecords.map(key));
  const oldKeys = new Set(oldRecords.map(key));
  const rows = [
    ...oldRecords.filter((r) => newKeys.has(key(r))).map((r) => ({ ...r, run: oldLabel })),
    ...newRecords.filter((r) => oldKeys.has(key(r))).map((r) => ({ ...r, run: "this run" })),
  ];
  return benchBarsSpec(rows, title, [oldLabel, "this run"]);
}
