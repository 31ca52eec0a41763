import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import type { Llama } from "node-llama-cpp";
import { backendLabel, cachedGpuCheck, getSharedLlama } from "./llama.js";
import type { GpuChoice } from "./types.js";

/** What lmrun sees of this machine and of the llama.cpp it runs on (`lmrun info`, bench records). */
export interface SystemReport {
  platform: string;
  cpu: { model: string; logicalCores: number; mathCores: number | null; features: string[] };
  ram: { totalBytes: number; freeBytes: number };
  /** The backend lmrun uses with the --gpu choice below. */
  activeBackend: string;
  gpuChoice: GpuChoice;
  gpus: { name: string }[];
  vram: { totalBytes: number; usedBytes: number; freeBytes: number } | null;
  /** Each llama.cpp backend node-llama-cpp ships for this platform, and whether it loads here. */
  backends: { name: string; loads: boolean; error?: string; testRun?: "passed" | "failed" }[];
  versions: { nodeLlamaCpp: string; llamaCppRelease: string; llamaCppCommit: string; llamaCppBuildNumber: number; node: string };
}

function nodeLlamaCppDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return path.dirname(path.dirname(require.resolve("node-llama-cpp")));
  } catch {
    return undefined;
  }
}

export function nodeLlamaCppVersion(): string {
  const dir = nodeLlamaCppDir();
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir ?? "", "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * The llama.cpp build node-llama-cpp ships, as llama-bench names it: the commit at the head of
 * llama/gitRelease.bundle (a git bundle's text header) and build number 1, because that bundle holds
 * one squashed commit, which is what llama-bench built from it reports.
 */
export function llamaCppBuild(): { release: string; commit: string; buildNumber: number } {
  const dir = nodeLlamaCppDir();
  let release = "unknown";
  let commit = "unknown";
  try {
    release = (JSON.parse(fs.readFileSync(path.join(dir ?? "", "llama", "llama.cpp.info.json"), "utf8")) as { tag?: string }).tag ?? release;
  } catch {
    // keep "unknown"
  }
  try {
    const handle = fs.openSync(path.join(dir ?? "", "llama", "gitRelease.bundle"), "r");
    const head = Buffer.alloc(512);
    fs.readSync(handle, head, 0, 512, 0);
    fs.closeSync(handle);
    const match = /^([0-9a-f]{40}) HEAD$/m.exec(head.toString("latin1"));
    if (match) commit = match[1]!.slice(0, 7);
  } catch {
    // keep "unknown"
  }
  return { release, commit, buildNumber: 1 };
}

function cpuModel(): string {
  const model = os.cpus()[0]?.model?.trim();
  return model && model.length > 0 ? model : os.arch();
}

export async function systemReport(options: { gpu: GpuChoice; probeBackends: boolean }): Promise<SystemReport> {
  const llama = await getSharedLlama(options.gpu);
  const { getLlamaGpuTypes, getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const gpus = (await llama.getGpuDeviceNames().catch(() => [] as string[])).map((name) => ({ name }));
  let vramState = llama.gpu === false ? null : await llama.getVramState().catch(() => null);
  const features = (/CPU : (.*)/.exec(llama.systemInfo)?.[1] ?? "")
    .split("|")
    .map((s) => s.trim())
    .filter((s) => s.endsWith("= 1"))
    .map((s) => s.replace(/\s*=\s*1$/, ""));

  const backends: SystemReport["backends"] = [];
  const testRunOf = async (backend: Llama): Promise<Pick<SystemReport["backends"][number], "testRun" | "error">> => {
    const outcome = await cachedGpuCheck(backend);
    if (!outcome) return {};
    return outcome.ok ? { testRun: "passed" } : { testRun: "failed", ...(outcome.reason ? { error: outcome.reason } : {}) };
  };
  if (options.probeBackends) {
    const candidates = await getLlamaGpuTypes("allValid");
    for (const candidate of candidates) {
      if (candidate === llama.gpu) {
        backends.push({ name: backendLabel(candidate), loads: true, ...(await testRunOf(llama)) });
        continue;
      }
      try {
        const probe = await getLlama({ gpu: candidate, build: "never", logLevel: LlamaLogLevel.disabled, progressLogs: false });
        const loads = probe.gpu === candidate;
        backends.push({ name: backendLabel(candidate), loads, ...(loads ? await testRunOf(probe) : {}) });
        if (loads && gpus.length === 0 && probe.gpu !== false) {
          // The active backend is the CPU (a GPU backend failed its test run): still show the hardware.
          gpus.push(...(await probe.getGpuDeviceNames().catch(() => [] as string[])).map((name) => ({ name })));
          vramState ??= await probe.getVramState().catch(() => null);
        }
        await probe.dispose().catch(() => {});
      } catch (error) {
        const message = (error as Error).message.split("\n")[0] ?? "";
        backends.push({ name: backendLabel(candidate), loads: false, error: message });
      }
    }
  } else {
    backends.push({ name: backendLabel(llama.gpu), loads: true });
  }

  const build = llamaCppBuild();
  return {
    platform: `${os.platform()} ${os.arch()} (${os.release()})`,
    cpu: { model: cpuModel(), logicalCores: os.cpus().length, mathCores: llama.cpuMathCores ?? null, features },
    ram: { totalBytes: os.totalmem(), freeBytes: os.freemem() },
    activeBackend: backendLabel(llama.gpu),
    gpuChoice: options.gpu,
    gpus,
    vram: vramState ? { totalBytes: vramState.total, usedBytes: vramState.used, freeBytes: vramState.free } : null,
    backends,
    versions: {
      nodeLlamaCpp: nodeLlamaCppVersion(),
      llamaCppRelease: build.release,
      llamaCppCommit: build.commit,
      llamaCppBuildNumber: build.buildNumber,
      node: process.version,
    },
  };
}
