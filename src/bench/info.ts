import type { SystemReport } from "../engine/system.js";
import { formatBytes } from "../io/format.js";

/** `lmrun info` as text: one "key: value" line each, then the backends. Pure. */
export function formatSystemReport(report: SystemReport): string {
  const cores = report.cpu.mathCores !== null ? `${report.cpu.logicalCores} logical, ${report.cpu.mathCores} for math` : `${report.cpu.logicalCores} logical`;
  const lines: [string, string][] = [
    ["platform", report.platform],
    ["cpu", report.cpu.model],
    ["cores", cores],
    ["cpu features", report.cpu.features.join(" ") || "-"],
    ["cpu threads", report.cpuThreads.detail],
    ["ram", `${formatBytes(report.ram.totalBytes)} (${formatBytes(report.ram.freeBytes)} free)`],
    ["backend", `${report.activeBackend} (used with --gpu ${report.gpuChoice})`],
    ["gpus", report.gpus.length > 0 ? report.gpus.map((g) => g.name).join(", ") : "none"],
    ["vram", report.vram ? `${formatBytes(report.vram.totalBytes)} (${formatBytes(report.vram.freeBytes)} free)` : "-"],
    ["node-llama-cpp", report.versions.nodeLlamaCpp],
    ["llama.cpp", `${report.versions.llamaCppRelease} (build ${report.versions.llamaCppCommit})`],
    ["node", report.versions.node],
  ];
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  let text = lines.map(([k, v]) => `${(k + ":").padEnd(width)}${v}`).join("\n") + "\n\nllama.cpp backends:\n";
  for (const backend of report.backends) {
    const state = !backend.loads ? "does not load" : backend.testRun === "failed" ? "loads, but fails a test run" : backend.testRun === "passed" ? "loads, test run passed" : "loads";
    text += `  ${backend.name.padEnd(8)}${state}${backend.error ? ` (${backend.error})` : ""}\n`;
  }
  return text;
}
