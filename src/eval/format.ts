import type { KldStatistics } from "./math.js";
import type { ComparisonResult, PerplexityResult } from "./types.js";

/** Text output in llama-perplexity's own layouts (printf formats copied from perplexity.cpp). */

function fixed(value: number, digits: number, width = 0): string {
  const text = Number.isFinite(value) ? value.toFixed(digits) : String(value).toLowerCase();
  return text.padStart(width);
}

/** `Final estimate: PPL = %.4lf +/- %.5lf` */
export function formatFinalEstimate(ppl: number, error: number): string {
  return `Final estimate: PPL = ${fixed(ppl, 4)} +/- ${fixed(error, 5)}`;
}

/** The running `[i]ppl,` item printed after each chunk. */
export function formatChunkProgress(chunk: number, ppl: number): string {
  return `[${chunk}]${fixed(ppl, 4)},`;
}

/** `%.2f seconds per pass - ETA [%d hours ]%.2f minutes` */
export function formatEta(secondsPerPass: number, chunks: number): string {
  let total = Math.floor(secondsPerPass * chunks);
  let text = `${fixed(secondsPerPass, 2)} seconds per pass - ETA `;
  if (total >= 3600) {
    text += `${Math.floor(total / 3600)} hours `;
    total %= 3600;
  }
  return `${text}${fixed(total / 60, 2)} minutes`;
}

const percent = (v: number) => 100 * v;

/** The three blocks llama-perplexity --kl-divergence prints at the end. */
export function formatKldStatistics(s: KldStatistics): string {
  const lines = [
    "====== Perplexity statistics ======",
    `Mean PPL(Q)                   : ${fixed(s.pplQ.value, 6, 10)} ± ${fixed(s.pplQ.error, 6, 10)}`,
    `Mean PPL(base)                : ${fixed(s.pplBase.value, 6, 10)} ± ${fixed(s.pplBase.error, 6, 10)}`,
    `Cor(ln(PPL(Q)), ln(PPL(base))): ${fixed(percent(s.lnPplCorrelation), 2, 6)}%`,
    `Mean ln(PPL(Q)/PPL(base))     : ${fixed(s.lnPplRatio.value, 6, 10)} ± ${fixed(s.lnPplRatio.error, 6, 10)}`,
    `Mean PPL(Q)/PPL(base)         : ${fixed(s.pplRatio.value, 6, 10)} ± ${fixed(s.pplRatio.error, 6, 10)}`,
    `Mean PPL(Q)-PPL(base)         : ${fixed(s.pplDiff.value, 6, 10)} ± ${fixed(s.pplDiff.error, 6, 10)}`,
    "",
    "====== KL divergence statistics ======",
    `Mean    KLD: ${fixed(s.kld.value, 6, 10)} ± ${fixed(s.kld.error, 6, 10)}`,
    `Maximum KLD: ${fixed(s.kld.max, 6, 10)}`,
    ...["99.9", "99", "95", "90"].map((k) => `${label(k)}   KLD: ${fixed(s.kld.percentiles[k]!, 6, 10)}`),
    `Median  KLD: ${fixed(s.kld.median, 6, 10)}`,
    ...["10", "5", "1", "0.1"].map((k) => `${label(k)}   KLD: ${fixed(s.kld.percentiles[k]!, 6, 10)}`),
    `Minimum KLD: ${fixed(s.kld.min, 6, 10)}`,
    "",
    "====== Token probability statistics ======",
    `Mean    Δp: ${fixed(percent(s.deltaP.value), 3, 6)} ± ${fixed(percent(s.deltaP.error), 3, 5)} %`,
    `Maximum Δp: ${fixed(percent(s.deltaP.max), 3, 6)}%`,
    ...["99.9", "99", "95", "90", "75"].map((k) => `${label(k)}   Δp: ${fixed(percent(s.deltaP.percentiles[k]!), 3, 6)}%`),
    `Median  Δp: ${fixed(percent(s.deltaP.median), 3, 6)}%`,
    ...["25", "10", "5", "1", "0.1"].map((k) => `${label(k)}   Δp: ${fixed(percent(s.deltaP.percentiles[k]!), 3, 6)}%`),
    `Minimum Δp: ${fixed(percent(s.deltaP.min), 3, 6)}%`,
    `RMS Δp    : ${fixed(percent(s.deltaP.rms.value), 3, 6)} ± ${fixed(percent(s.deltaP.rms.error), 3, 5)} %`,
    `Same top p: ${fixed(percent(s.sameTop.value), 3, 6)} ± ${fixed(percent(s.sameTop.error), 3, 5)} %`,
  ];
  return lines.join("\n") + "\n";
}

/** "99.9%" / " 5.0%" as llama.cpp's "%4.1f%%"-style labels. */
function label(key: string): string {
  return `${Number(key).toFixed(1).padStart(4)}%`;
}

/** One table for --base: the base's PPL, then each model's PPL, ratio, KLD, same-top and top-1 accuracy. */
export function formatComparisonTable(result: ComparisonResult): string {
  const header = ["model", "PPL", "PPL/PPL(base)", "mean KLD", "same top", "top-1 acc"];
  const rows: string[][] = [
    [`${result.base.model.fileName} (base)`, `${fixed(result.base.ppl, 4)} ± ${fixed(result.base.pplError, 4)}`, "1", "0", "100%", pct(result.base.top1Accuracy)],
  ];
  for (const m of result.models) {
    const k = m.klDivergence;
    rows.push([
      m.model.fileName,
      `${fixed(m.ppl, 4)} ± ${fixed(m.pplError, 4)}`,
      m.comparison ? `${fixed(m.comparison.pplRatio.value, 4)} ± ${fixed(m.comparison.pplRatio.error, 4)}` : "-",
      k ? `${fixed(k.kld.value, 6)} ± ${fixed(k.kld.error, 6)}` : "-",
      k ? `${pct(k.sameTop.value)} ± ${fixed(percent(k.sameTop.error), 2)}` : "-",
      pct(m.top1Accuracy),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  const base = result.base;
  const footer = `ctx ${base.ctx}, ${base.chunks} chunks, ${base.tokensScored} tokens scored per model`;
  return [line(header), ...rows.map(line), "", footer].join("\n") + "\n";
}

function pct(v: number): string {
  return `${fixed(percent(v), 2)}%`;
}

export function formatSummaryLine(r: PerplexityResult): string {
  return `${r.model.fileName}: ${r.tokensScored} tokens in ${r.chunks} chunks of ${r.ctx}, top-1 accuracy ${pct(r.top1Accuracy)}, ${fixed(r.seconds, 2)} s`;
}
