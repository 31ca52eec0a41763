import fs from "node:fs";
import type { CommandContext } from "../context.js";
import { LmrunError } from "../../errors.js";
import { formatBytes, textTable } from "../../io/format.js";
import { startSpinner } from "../../io/progress.js";
import { findCatalogueEntry, loadCatalogue } from "../../models/catalogue.js";
import { authHeadersFor, huggingFaceEndpoint, huggingFaceToken } from "../../models/hf.js";
import { parseReference } from "../../models/ref.js";
import { openStore, planReference } from "../../models/resolve.js";

/** `lmrun show REF`: local files are read from disk; a remote reference only has its header fetched. */
export async function showModel(ctx: CommandContext, ref: string, options: { json: boolean; template: boolean }): Promise<void> {
  const store = await openStore(ctx.env);
  const resolution = await planReference(ref, store, ctx.env, ctx.signal);
  const { inspectModel } = await import("../../engine/inspect.js");
  const spinner = await startSpinner(`reading ${ref}`, { stderr: ctx.stderr, env: ctx.env, quiet: ctx.quiet || options.json });
  let report;
  let name: string;
  try {
    if (resolution.kind === "local") {
      name = resolution.resolved.displayName;
      report = await inspectModel({ path: resolution.resolved.path }, { signal: ctx.signal });
    } else {
      name = resolution.plan.displayName;
      const first = resolution.plan.targets[0]!;
      const local = store.absolute(first.file);
      const token = huggingFaceToken(ctx.env);
      report = fs.existsSync(local)
        ? await inspectModel({ path: local }, { signal: ctx.signal })
        : await inspectModel({ url: first.url, headers: authHeadersFor(first.url, ctx.env), huggingFaceEndpoint: huggingFaceEndpoint(ctx.env), ...(token ? { token } : {}) }, { signal: ctx.signal });
    }
  } finally {
    spinner.stop();
  }
  const license = report.license ?? catalogueLicense(ref);
  if (options.json) {
    ctx.out.json({ model: name, ...report, license: license ?? null });
    return;
  }
  if (options.template) {
    if (report.chatTemplate === undefined) throw new LmrunError(`${name} has no chat template`, { hint: "lmrun runs it as plain completion" });
    ctx.out.text(report.chatTemplate + "\n");
    return;
  }
  const rows: [string, string][] = [
    ["name", name],
    ["architecture", report.architecture ?? "-"],
    ["parameters", report.parameters !== undefined ? formatCount(report.parameters) : "-"],
    ["quantization", report.quant ?? "-"],
    ["weights", formatBytes(report.modelBytes)],
    ["layers", String(report.layers)],
    ["context length", report.contextLength !== undefined ? String(report.contextLength) : "-"],
    ["chat template", report.chatTemplate !== undefined ? `yes (${report.chatTemplate.length} chars; --template prints it)` : "none"],
    ["capabilities", report.capabilities.join(", ")],
    ["licence", license ?? "-"],
    ["source", report.source.kind === "file" ? report.source.path : `${report.source.url} (header only)`],
  ];
  ctx.out.text(rows.map(([k, v]) => `  ${k.padEnd(16)}${v}`).join("\n") + "\n\n");
  const gpu = report.machine.gpu;
  ctx.out.text(`  memory needed (this machine: ${formatBytes(report.machine.freeRamBytes)} RAM free${gpu ? `, ${gpu} ${formatBytes(report.machine.freeVramBytes)} VRAM free` : ", no GPU"})\n`);
  const header = ["  CONTEXT", "CPU RAM", "FITS", ...(gpu ? ["GPU VRAM", "FITS"] : [])];
  ctx.out.text(
    textTable(
      header,
      report.memory.map((m) => [`  ${m.contextSize}`, formatBytes(m.cpu.ramBytes), m.cpu.fits ? "yes" : "no", ...(m.gpu ? [formatBytes(m.gpu.vramBytes), m.gpu.fits ? "yes" : "no"] : [])]),
    ),
  );
  ctx.out.text(report.largestFittingContext !== null ? `  largest context that fits: ${report.largestFittingContext}\n` : "  no listed context size fits in free memory\n");
  const r = report.recommended;
  if (r) ctx.out.text(`  node-llama-cpp would load it with a ${r.contextSize}-token context and ${r.gpuLayers} GPU layers (${formatBytes(r.ramBytes)} RAM${r.vramBytes > 0 ? `, ${formatBytes(r.vramBytes)} VRAM` : ""})\n`);
}

function catalogueLicense(ref: string): string | undefined {
  try {
    const parsed = parseReference(ref);
    if (parsed.kind !== "catalogue" && parsed.kind !== "bundled") return undefined;
    const name = parsed.kind === "bundled" ? parsed.name : parsed.name;
    return findCatalogueEntry(loadCatalogue(), name, parsed.kind === "catalogue" ? parsed.tag : undefined)?.license;
  } catch {
    return undefined;
  }
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}
