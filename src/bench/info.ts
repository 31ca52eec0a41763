import type { SystemReport } from "../engine/system.js";
import type { RpcWorkerInfo } from "../engine/rpc/preflight.js";
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
    ["node-llama-cpp", `${report.versions.nodeLlamaCpp}${report.versions.nodeLlamaCppLoadedFrom === "bundle" ? " (one-file bundle)" : ""}`],
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

/** `lmrun info --rpc`: each worker's devices as the client will name them (RPC0, RPC1, … in --rpc order). Pure. */
export function formatRpcWorkers(workers: RpcWorkerInfo[]): string {
  let text = "\nRPC workers:\n";
  let next = 0;
  for (const worker of workers) {
    text += `  ${worker.endpoint.address}  protocol ${worker.version}\n`;
    for (const device of worker.devices) {
      text += `    RPC${next++}  device ${device.index}: ${formatBytes(device.totalBytes)} (${formatBytes(device.freeBytes)} free)\n`;
    }
  }
  const free = workers.reduce((sum, worker) => sum + worker.devices.reduce((s, d) => s + d.freeBytes, 0), 0);
  return `${text}  total free on the workers: ${formatBytes(free)}\n`;
}
