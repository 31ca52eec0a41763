import type { KldStatistics } from "../eval/math.js";
import type { ChartSpec } from "./render.js";

/** The running PPL after each chunk, as llama-perplexity prints it ([1]5.2,[2]5.9,…), for one model. */
export interface PplSeries {
  model: string;
  points: { chunk: number; ppl: number }[];
}

/**
 * Splits the chunk events of a run into one series per model pass: with --base the base model is
 * scored first, then each model, and every pass starts again at chunk 1.
 */
export function splitPasses(events: readonly { chunk: number; ppl: number }[], models: readonly string[]): PplSeries[] {
  const series: PplSeries[] = [];
  let last = Infinity;
  for (const event of events) {
    if (event.chunk <= last) series.push({ model: models[series.length] ?? `model ${series.length + 1}`, points: [] });
    series.at(-1)!.points.push({ chunk: event.chunk, ppl: event.ppl });
    last = event.chunk;
  }
  return series;
}

function pplSpec(series: readonly PplSeries[], ctx: number): ChartSpec {
  const values = series.flatMap((s) => s.points.map((p) => ({ model: s.model, chunk: p.chunk, ppl: p.ppl })));
  return {
    title: "perplexity over the chunks (running estimate)",
    width: 520,
    height: 260,
    data: { values },
    mark: { type: "line", point: values.length <= 200 },
    encoding: {
      x: { field: "chunk", type: "quantitative", title: `chunk (${ctx} tokens each)`, axis: { tickMinStep: 1, format: "d" } },
      y: { field: "ppl", type: "quantitative", title: "perplexity (PPL)", scale: { zero: false } },
      color: { field: "model", type: "nominal", title: "model" },
    },
  };
}

/** KLD's distribution over the scored tokens as its quantiles (min, percentiles, median, max), one line per model. */
function kldSpec(models: readonly { model: string; kld: KldStatistics["kld"] }[]): ChartSpec {
  const values = models.flatMap(({ model, kld }) => [
    { model, percentile: 0, kld: kld.min },
    ...Object.entries(kld.percentiles).map(([key, value]) => ({ model, percentile: Number(key), kld: value })),
    { model, percentile: 50, kld: kld.median },
    { model, percentile: 100, kld: kld.max },
  ]).sort((a, b) => a.percentile - b.percentile);
  return {
    title: "KL divergence from the base, per token: its distribution",
    width: 520,
    height: 260,
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "percentile", type: "quantitative", title: "percentile of the scored tokens (%)", scale: { domain: [0, 100] } },
      y: { field: "kld", type: "quantitative", title: "KL divergence (nats, symlog scale)", scale: { type: "symlog", constant: 0.001 } },
      color: { field: "model", type: "nominal", title: "model" },
    },
  };
}

/** PPL over the chunks; with a base model (or a KLD base file), the KLD distribution below it. */
export function perplexitySpec(series: readonly PplSeries[], ctx: number, kld: readonly { model: string; kld: KldStatistics["kld"] }[] = []): ChartSpec {
  const ppl = pplSpec(series, ctx);
  if (kld.length === 0) return { $schema: "https://vega.github.io/schema/vega-lite/v6.json", ...ppl };
  return { $schema: "https://vega.github.io/schema/vega-lite/v6.json", vconcat: [ppl, kldSpec(kld)], resolve: { scale: { color: "shared" } } };
}
