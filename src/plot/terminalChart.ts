import path from "node:path";
import { testName } from "../bench/sweep.js";
import { sweptAxis, type PlotRecord } from "./benchCharts.js";

const LEVELS = "▁▂▃▄▅▆▇█";

/**
 * A compact chart for a terminal, under a sweep's table: one line per model and test, a bar per
 * swept value scaled to that line's fastest, then the range in tokens/s. Undefined when nothing was
 * swept. Colour only when asked (the caller decides: a terminal, NO_COLOR unset).
 */
export function terminalSweepChart(records: readonly PlotRecord[], color: boolean): string | undefined {
  const axis = sweptAxis(records);
  if (axis === undefined) return undefined;
  const xs = [...new Set(records.map((r) => r[axis.field]))].sort((a, b) => a - b);
  const series = new Map<string, Map<number, number>>();
  for (const r of records) {
    if ((axis.field === "n_prompt" && r.n_prompt === 0) || (axis.field === "n_gen" && r.n_gen === 0)) continue;
    const test = axis.field === "n_prompt" ? "pp" : axis.field === "n_gen" ? "tg" : testName({ nPrompt: r.n_prompt, nGen: r.n_gen, nDepth: r.n_depth });
    const name = `${path.basename(r.model_filename)} ${test}`;
    if (!series.has(name)) series.set(name, new Map());
    series.get(name)!.set(r[axis.field], r.avg_ts);
  }
  const width = Math.max(...[...series.keys()].map((n) => n.length));
  const lines = [`t/s by ${axis.title} (${xs.join(", ")}):`];
  for (const [name, points] of series) {
    const values = [...points.values()];
    const max = Math.max(...values);
    const bars = xs
      .map((x) => {
        const value = points.get(x);
        if (value === undefined || max <= 0) return " ";
        return LEVELS[Math.min(LEVELS.length - 1, Math.max(0, Math.round((value / max) * (LEVELS.length - 1))))];
      })
      .join("");
    const range = `${format(Math.min(...values))}–${format(max)}`;
    lines.push(`  ${name.padEnd(width)}  ${color ? `\x1b[36m${bars}\x1b[0m` : bars}  ${range}`);
  }
  return `${lines.join("\n")}\n`;
}

function format(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}
