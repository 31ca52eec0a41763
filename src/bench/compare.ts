import path from "node:path";
import { UsageError } from "../errors.js";
import { welchT } from "./stats.js";
import { testName } from "./sweep.js";

/**
 * `--compare OLD.json`: deltas of this run against an earlier one (lmrun's or llama-bench's own -o json /
 * -o jsonl), matched on model file, test and settings. A delta is marked when Welch's t exceeds 2, i.e.
 * when it is larger than the repetitions' noise can explain at about 95%.
 */

/** The fields a comparison needs; both tools' records have them. */
export interface ComparableRecord {
  model_filename: string;
  n_prompt: number;
  n_gen: number;
  n_depth: number;
  n_threads: number;
  n_batch: number;
  n_ubatch: number;
  type_k: string;
  type_v: string;
  flash_attn: number;
  n_gpu_layers: number;
  avg_ts: number;
  stddev_ts: number;
  samples_ts?: number[];
}

export interface Comparison {
  model: string;
  test: string;
  threads: number;
  oldTs: number;
  newTs: number;
  deltaPercent: number;
  significant: boolean;
}

export const SIGNIFICANCE_T = 2;

function keyOf(r: ComparableRecord): string {
  return [path.basename(r.model_filename), r.n_prompt, r.n_gen, r.n_depth, r.n_threads, r.n_batch, r.n_ubatch, r.type_k, r.type_v, r.flash_attn, r.n_gpu_layers].join("|");
}

/** Parses a JSON array or JSON lines of bench records; skips lines that are not records (e.g. a partial marker). */
export function parseRecords(text: string, source: string): ComparableRecord[] {
  const trimmed = text.trim();
  let values: unknown[];
  try {
    values = trimmed.startsWith("[") ? (JSON.parse(trimmed) as unknown[]) : trimmed.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as unknown);
  } catch (error) {
    throw new UsageError(`${source} is not bench JSON: ${(error as Error).message}`, "Give a file written by lmrun bench -o json (or llama-bench -o json)");
  }
  const records = values.filter(
    (v): v is ComparableRecord => typeof v === "object" && v !== null && typeof (v as ComparableRecord).avg_ts === "number" && typeof (v as ComparableRecord).n_prompt === "number",
  );
  if (records.length === 0) throw new UsageError(`${source} holds no bench records`, "Give a file written by lmrun bench -o json");
  return records;
}

export function compareRecords(oldRecords: readonly ComparableRecord[], newRecords: readonly ComparableRecord[]): Comparison[] {
  const oldByKey = new Map(oldRecords.map((r) => [keyOf(r), r]));
  const result: Comparison[] = [];
  for (const current of newRecords) {
    const previous = oldByKey.get(keyOf(current));
    if (!previous) continue;
    const t = welchT(
      { mean: previous.avg_ts, sd: previous.stddev_ts, n: previous.samples_ts?.length ?? 1 },
      { mean: current.avg_ts, sd: current.stddev_ts, n: current.samples_ts?.length ?? 1 },
    );
    result.push({
      model: path.basename(current.model_filename),
      test: testName({ nPrompt: current.n_prompt, nGen: current.n_gen, nDepth: current.n_depth }),
      threads: current.n_threads,
      oldTs: previous.avg_ts,
      newTs: current.avg_ts,
      deltaPercent: previous.avg_ts === 0 ? 0 : ((current.avg_ts - previous.avg_ts) / previous.avg_ts) * 100,
      significant: Math.abs(t) > SIGNIFICANCE_T,
    });
  }
  return result;
}

/** A markdown table; deltas beyond the noise carry a "*". */
export function formatComparison(rows: readonly Comparison[]): string {
  if (rows.length === 0) return "compare: no test in this run matches one in the old file\n";
  const header = ["model", "test", "threads", "old t/s", "new t/s", "delta"];
  const cells = rows.map((r) => [
    r.model,
    r.test,
    String(r.threads),
    r.oldTs.toFixed(2),
    r.newTs.toFixed(2),
    `${r.deltaPercent >= 0 ? "+" : ""}${r.deltaPercent.toFixed(1)}%${r.significant ? " *" : ""}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((v, i) => (i < 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join(" | ")} |\n`;
  const rule = `| ${widths.map((w, i) => (i < 2 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ")} |\n`;
  const footnote = rows.some((r) => r.significant) ? `\n* beyond the noise (Welch t > ${SIGNIFICANCE_T})\n` : `\nno delta is beyond the noise (Welch t > ${SIGNIFICANCE_T})\n`;
  return line(header) + rule + cells.map(line).join("") + footnote;
}

/** This run's tests that the old file does not have (so they are missing from the comparison). */
export function unmatchedTests(oldRecords: readonly ComparableRecord[], newRecords: readonly ComparableRecord[]): string[] {
  const oldKeys = new Set(oldRecords.map(keyOf));
  return newRecords
    .filter((r) => !oldKeys.has(keyOf(r)))
    .map((r) => `${path.basename(r.model_filename)} ${testName({ nPrompt: r.n_prompt, nGen: r.n_gen, nDepth: r.n_depth })} (${r.n_threads} threads)`);
}
