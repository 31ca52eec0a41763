import path from "node:path";
import { LmrunError, UsageError } from "../errors.js";
import { writeFileAtomic } from "../fs/atomicWrite.js";

/**
 * Charts are Vega-Lite specifications, compiled and drawn to SVG by Vega in this process (no browser,
 * no canvas), and turned into PNG by resvg. All three are imported only when a chart is written.
 */
export type ChartSpec = Record<string, unknown>;
export type ChartFormat = "svg" | "png";

/** The format a --plot file asks for, checked before any work starts. */
export function chartFormat(file: string, flag = "--plot"): ChartFormat {
  const extension = path.extname(file).toLowerCase();
  if (extension === ".svg") return "svg";
  if (extension === ".png") return "png";
  throw new UsageError(`${flag} ${file}: the file must end in .svg or .png`, `e.g. ${flag} chart.svg`);
}

/** Common look: white background (PNG viewers), readable fonts, no chart border. */
const CONFIG = {
  background: "white",
  padding: 12,
  font: "DejaVu Sans, Helvetica, Arial, sans-serif",
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, gridOpacity: 0.5 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
  title: { fontSize: 14, anchor: "start" },
};

export async function renderSvg(spec: ChartSpec): Promise<string> {
  const [vegaLite, vega] = await Promise.all([import("vega-lite"), import("vega")]);
  const compiled = vegaLite.compile({ ...spec, config: { ...CONFIG, ...(spec.config as object | undefined) } } as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function renderPng(svg: string): Promise<Uint8Array> {
  let Resvg: typeof import("@resvg/resvg-js").Resvg;
  try {
    ({ Resvg } = await import("@resvg/resvg-js"));
  } catch (error) {
    // Its binary is an optional package per platform: an install with --omit=optional has none.
    throw new LmrunError(`PNG output needs resvg's binary for ${process.platform}-${process.arch}, which is not installed (${(error as Error).message.split("\n")[0]})`, {
      hint: "Write an .svg instead, or install it: npm install -g @resvg/resvg-js (without --omit=optional)",
    });
  }
  // System fonts draw the text; twice the SVG's size keeps it sharp.
  const resvg = new Resvg(svg, { background: "white", fitTo: { mode: "zoom", value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } });
  return resvg.render().asPng();
}

/** Draws the chart into FILE (.svg or .png), written atomically. */
export async function writeChart(file: string, spec: ChartSpec): Promise<void> {
  const format = chartFormat(file);
  const svg = await renderSvg(spec);
  await writeFileAtomic(file, format === "svg" ? svg : await renderPng(svg), { mode: 0o644 });
}
