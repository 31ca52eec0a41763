import type { TaskKind } from "./datasets.js";

/**
 * The figures llama-perplexity prints for its task scores, with its arithmetic (float where it
 * uses float) and its printf layouts, plus the comparison with a base model. Pure.
 */

const f32 = Math.fround;
/** perplexity.cpp's z for 95%. */
export const Z95 = 1.95996398454;

/**
 * printf("%.*f"): the exact binary value rounded half to even (glibc), where toFixed rounds an
 * exact tie up.
 */
export function cFixed(value: number, digits: number, width = 0): string {
  let text: string;
  // x86's NaN from 0.f/0 has its sign bit set, and glibc prints it "-nan" (Winogrande's empty scores).
  if (!Number.isFinite(value)) text = Number.isNaN(value) ? "-nan" : value > 0 ? "inf" : "-inf";
  else {
    text = value.toFixed(digits);
    const exact = Math.abs(value).toFixed(100);
    const dot = exact.indexOf(".");
    const rest = exact.slice(dot + 1 + digits);
    if (/^50*$/.test(rest)) {
      // An exact tie: toFixed went away from zero; glibc goes to the even neighbour.
      const kept = digits === 0 ? exact.slice(0, dot) : exact.slice(0, dot + 1 + digits);
      if (Number(kept.at(-1)) % 2 === 0) text = (value < 0 ? "-" : "") + kept;
    }
  }
  return text.padStart(width);
}

/** The Wilson score interval hellaswag_score prints (as fractions). */
export function wilson(correct: number, n: number): { low: number; high: number } {
  const freq = correct / n;
  const z = (Z95 * Z95) / n;
  const cnf = (z * Math.sqrt(n * (4.0 * freq * (1 - freq) + z))) / (Z95 + Z95);
  return { low: (freq + z * 0.5 - cnf) / (1.0 + z), high: (freq + z * 0.5 + cnf) / (1.0 + z) };
}

/** `p ± sqrt(p(1-p)/(n-1))` in float, as winogrande_score and multiple_choice_score compute it. */
export function floatAccuracy(correct: number, n: number): { p: number; sigma: number } {
  const p = f32(correct / n);
  return { p, sigma: f32(Math.sqrt(f32(f32(p * f32(1 - p)) / f32(n - 1)))) };
}

export interface TaskRow {
  /** 1-based, in evaluation order. */
  task: number;
  correct: number;
  predicted: number;
  scores: number[];
  /** Winogrande's printed answer (1 or 2). */
  answer?: number;
}

/** The header llama-perplexity prints on stdout before the running table. */
export function tableHeader(kind: TaskKind): string {
  if (kind === "hellaswag") return "\ntask\tacc_norm\t95% confidence interval\n";
  if (kind === "mc") return "\ntask\tacc_norm\n";
  return "";
}

/** One running-table line, printf for printf. */
export function tableRow(kind: TaskKind, row: TaskRow): string {
  const n = row.task;
  if (kind === "hellaswag") {
    const { low, high } = wilson(row.correct, n);
    return `${n}\t${cFixed((row.correct / n) * 100.0, 8, 3)}%\t[${cFixed(low * 100.0, 4, 3)}%, ${cFixed(high * 100.0, 4, 3)}%]\n`;
  }
  if (kind === "winogrande") {
    return `${n}\t${cFixed((100.0 * row.correct) / n, 4)}\t${cFixed(row.scores[0]!, 6, 10)}  ${cFixed(row.scores[1]!, 6, 10)}  ${row.predicted + 1}  ${row.answer}\n`;
  }
  return `${n}\t${cFixed((100 * row.correct) / n, 8)}\n`;
}

export interface Score {
  tasks: number;
  correct: number;
  /** 0..1 */
  accuracy: number;
  /** The ± llama-perplexity prints (Winogrande, multiple choice: one standard error), 0..1. */
  standardError: number;
  /** 95% interval, 0..1: Wilson for HellaSwag (as printed), accuracy ± 1.96 SE otherwise. */
  ci95: { low: number; high: number };
  /** Multiple choice: the accuracy of picking at random, ± its SE (0..1). */
  randomChance?: { value: number; standardError: number };
}

export function scoreOf(kind: TaskKind, correct: number, n: number, answers: number): Score {
  if (kind === "hellaswag") {
    const accuracy = correct / n;
    return { tasks: n, correct, accuracy, standardError: Math.sqrt((accuracy * (1 - accuracy)) / (n - 1)), ci95: wilson(correct, n) };
  }
  const { p, sigma } = floatAccuracy(correct, n);
  const score: Score = { tasks: n, correct, accuracy: p, standardError: sigma, ci95: { low: p - Z95 * sigma, high: p + Z95 * sigma } };
  if (kind === "mc") {
    const chance = floatAccuracy(n, answers);
    // multiple_choice_score divides by n_done - 1 for the chance figure too.
    const sigmaChance = f32(Math.sqrt(f32(f32(chance.p * f32(1 - chance.p)) / f32(n - 1))));
    score.randomChance = { value: chance.p, standardError: sigmaChance };
  }
  return score;
}

/** The final lines (stdout): llama-perplexity's for Winogrande and multiple choice; HellaSwag's last row restated. */
export function finalLines(kind: TaskKind, score: Score): string {
  if (kind === "hellaswag") {
    return `\nFinal HellaSwag score(${score.tasks} tasks): ${cFixed(score.accuracy * 100, 8)}% [${cFixed(score.ci95.low * 100, 4)}%, ${cFixed(score.ci95.high * 100, 4)}%] (95% confidence interval)\n`;
  }
  if (kind === "winogrande") {
    return `\nFinal Winogrande score(${score.tasks} tasks): ${cFixed(f32(100 * score.accuracy), 4)} +/- ${cFixed(f32(100 * score.standardError), 4)}\n`;
  }
  const chance = score.randomChance!;
  return (
    `\nFinal result: ${cFixed(f32(100 * score.accuracy), 4)} +/- ${cFixed(f32(100 * score.standardError), 4)}\n` +
    `Random chance: ${cFixed(f32(100 * chance.value), 4)} +/- ${cFixed(f32(100 * chance.standardError), 4)}\n`
  );
}

/** Paired difference of two models' per-task correctness: mean, SE and 95% interval (fractions). */
export function pairedDifference(model: boolean[], base: boolean[]): { value: number; standardError: number; ci95: { low: number; high: number }; tasks: number } {
  const n = Math.min(model.length, base.length);
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < n; i++) {
    const d = Number(model[i]) - Number(base[i]);
    sum += d;
    sumSquares += d * d;
  }
  const mean = sum / n;
  const variance = n > 1 ? Math.max(0, sumSquares / n - mean * mean) * (n / (n - 1)) : Number.NaN;
  const se = Math.sqrt(variance / n);
  return { value: mean, standardError: se, ci95: { low: mean - Z95 * se, high: mean + Z95 * se }, tasks: n };
}

/** `--base`: both models' scores and the difference, with its 95% interval (percentage points). */
export function formatComparison(
  kind: TaskKind,
  model: { model: { fileName: string }; score: Score },
  base: { model: { fileName: string }; score: Score },
  difference: ReturnType<typeof pairedDifference>,
): string {
  const pct = (v: number) => cFixed(100 * v, 2);
  const line = (name: string, s: Score) => [name, `${pct(s.accuracy)}%`, `[${pct(s.ci95.low)}%, ${pct(s.ci95.high)}%]`, String(s.tasks)];
  const rows = [["model", "accuracy", "95% CI", "tasks"], line(`${base.model.fileName} (base)`, base.score), line(model.model.fileName, model.score)];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")).join("\n");
  const sign = difference.value >= 0 ? "+" : "";
  return (
    `${table}\n\n` +
    `difference (${model.model.fileName} - base), paired over ${difference.tasks} ${kind} tasks: ${sign}${pct(difference.value)} points, ` +
    `95% CI [${pct(difference.ci95.low)}, ${pct(difference.ci95.high)}]\n`
  );
}
