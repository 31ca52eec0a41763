import { UsageError } from "../../errors.js";
import { bleuFromStats, bleuSegmentStats, sumStats } from "../metrics/bleu.js";
import { chrfFromStats, chrfSegmentStats } from "../metrics/chrf.js";
import { rougeScores } from "../metrics/rouge.js";
import { Mt19937 } from "../tasks/rng.js";

/**
 * The generation metrics over a list of (answer, references), each with a 95% interval from a
 * paired bootstrap (1,000 resamples of the items, mt19937 seed 12345, percentile interval): corpus
 * BLEU and chrF are not means of per-item scores, so one method serves every metric and the
 * difference of two models alike.
 */

export const METRICS = ["em", "bleu", "chrf", "rouge1", "rouge2", "rougeL"] as const;
export type MetricName = (typeof METRICS)[number];

export const METRIC_LABELS: Record<MetricName, string> = {
  em: "exact match (%)",
  bleu: "BLEU (sacrebleu 13a, exp)",
  chrf: "chrF2 (sacrebleu)",
  rouge1: "ROUGE-1 F1",
  rouge2: "ROUGE-2 F1",
  rougeL: "ROUGE-L F1",
};

export function parseMetrics(raw: string | undefined): MetricName[] {
  if (raw === undefined) return [...METRICS];
  const names = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const out: MetricName[] = [];
  for (const name of names) {
    const canonical = name === "rouge" ? (["rouge1", "rouge2", "rougeL"] as const) : METRICS.find((m) => m.toLowerCase() === name.toLowerCase());
    if (canonical === undefined) throw new UsageError(`unknown metric "${name}"`, `Use any of ${METRICS.join(", ")} (or rouge for all three), comma-separated`);
    for (const m of Array.isArray(canonical) ? canonical : [canonical as MetricName]) if (!out.includes(m)) out.push(m);
  }
  if (out.length === 0) throw new UsageError("--metrics names no metric", `Use any of ${METRICS.join(", ")}`);
  return out;
}

export interface ScoredItem {
  answer: string;
  references: string[];
}

/** Per-item statistics from which every metric of any subset (a bootstrap sample) follows. */
interface ItemStats {
  em: number;
  bleu: number[];
  chrf: number[];
  rouge1: number;
  rouge2: number;
  rougeL: number;
}

/** Exact match: the answer equals a reference once both are trimmed of surrounding whitespace. */
export function exactMatch(answer: string, references: string[]): boolean {
  const a = answer.trim();
  return references.some((r) => r.trim() === a);
}

function itemStats(item: ScoredItem, metrics: MetricName[], stem: boolean): ItemStats {
  const wants = (m: MetricName) => metrics.includes(m);
  const rouge = wants("rouge1") || wants("rouge2") || wants("rougeL") ? rougeScores(item.answer, item.references, stem) : { rouge1: 0, rouge2: 0, rougeL: 0 };
  return {
    em: exactMatch(item.answer, item.references) ? 1 : 0,
    bleu: wants("bleu") ? bleuSegmentStats(item.answer, item.references) : [],
    chrf: wants("chrf") ? chrfSegmentStats(item.answer, item.references) : [],
    ...rouge,
  };
}

function metricOf(name: MetricName, stats: ItemStats[], index: ArrayLike<number>): number {
  const pick = (f: (s: ItemStats) => number) => {
    let sum = 0;
    for (let i = 0; i < index.length; i++) sum += f(stats[index[i]!]!);
    return sum / index.length;
  };
  const rows = (f: (s: ItemStats) => number[]) => Array.from({ length: index.length }, (_, i) => f(stats[index[i]!]!));
  switch (name) {
    case "em":
      return 100 * pick((s) => s.em);
    case "bleu":
      return bleuFromStats(sumStats(rows((s) => s.bleu))).score;
    case "chrf":
      return chrfFromStats(sumStats(rows((s) => s.chrf)));
    default:
      return pick((s) => s[name]);
  }
}

export interface MetricValue {
  value: number;
  ci95: { low: number; high: number };
}

export interface MetricReport {
  items: number;
  metrics: Partial<Record<MetricName, MetricValue>>;
  rougeStemmer: boolean;
}

const RESAMPLES = 1000;

function percentile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function bootstrap(n: number, f: (index: Uint32Array) => number): { low: number; high: number } {
  const rng = new Mt19937(12345);
  const values: number[] = [];
  const index = new Uint32Array(n);
  for (let r = 0; r < RESAMPLES; r++) {
    for (let i = 0; i < n; i++) index[i] = rng.next() % n;
    values.push(f(index));
  }
  values.sort((a, b) => a - b);
  return { low: percentile(values, 0.025), high: percentile(values, 0.975) };
}

export function scoreItems(items: ScoredItem[], metrics: MetricName[], stem: boolean): { report: MetricReport; stats: ItemStats[] } {
  const stats = items.map((item) => itemStats(item, metrics, stem));
  const all = Uint32Array.from(items.keys());
  const report: MetricReport = { items: items.length, metrics: {}, rougeStemmer: stem };
  for (const m of metrics) report.metrics[m] = { value: metricOf(m, stats, all), ci95: bootstrap(items.length, (idx) => metricOf(m, stats, idx)) };
  return { report, stats };
}

/** model minus base on the same items (paired: the same bootstrap samples for both). */
export function differenceOf(model: ItemStats[], base: ItemStats[], metrics: MetricName[]): Partial<Record<MetricName, MetricValue>> {
  const n = Math.min(model.length, base.length);
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const out: Partial<Record<MetricName, MetricValue>> = {};
  for (const m of metrics) {
    const diff = (idx: ArrayLike<number>) => metricOf(m, model, idx) - metricOf(m, base, idx);
    out[m] = { value: diff(all), ci95: bootstrap(n, diff) };
  }
  return out;
}

function fmt(v: number, metric: MetricName): string {
  return metric.startsWith("rouge") ? v.toFixed(4) : v.toFixed(2);
}

/** A two- or four-column table: metric, value, 95% interval (and the base and difference). */
export function formatMetricTable(report: MetricReport, metrics: MetricName[], base?: MetricReport, difference?: Partial<Record<MetricName, MetricValue>>): string {
  const header = base ? ["metric", "model", "base", "difference", "95% CI"] : ["metric", "value", "95% CI"];
  const rows = metrics.map((m) => {
    const v = report.metrics[m]!;
    if (!base || !difference) return [METRIC_LABELS[m], fmt(v.value, m), `[${fmt(v.ci95.low, m)}, ${fmt(v.ci95.high, m)}]`];
    const d = difference[m]!;
    return [METRIC_LABELS[m], fmt(v.value, m), fmt(base.metrics[m]!.value, m), `${d.value >= 0 ? "+" : ""}${fmt(d.value, m)}`, `[${fmt(d.ci95.low, m)}, ${fmt(d.ci95.high, m)}]`];
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const lines = all.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  const stemNote = metrics.some((m) => m.startsWith("rouge")) ? `, ROUGE ${report.rougeStemmer ? "with" : "without"} the Porter stemmer` : "";
  return `${lines.join("\n")}\n\n${report.items} answers${stemNote}; 95% CI: paired bootstrap, ${RESAMPLES} resamples\n`;
}
