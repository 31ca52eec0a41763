import os from "node:os";
import type { Llama } from "node-llama-cpp";
import { llamaCppBuild, nodeLlamaCppVersion } from "./binding.js";
import { backendLabel, backendUnavailable, cachedGpuCheck, getSharedLlama } from "./llama.js";
import { threadpoolStatus } from "./threadpool.js";
import type { GpuChoice } from "./types.js";
import { loadNodeLlamaCpp, nodeLlamaCppLoadedFrom } from "./nodeLlamaCpp.js";

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
  /** Whether CPU decoding keeps its threads between tokens (lmrun's shim) or starts them per decode. */
  cpuThreads: { persistentPool: boolean; detail: string };
  versions: {
    nodeLlamaCpp: string;
    /** "bundle": lmrun's one-file build of the installed version (faster start); "package": the package's modules. */
    nodeLlamaCppLoadedFrom: "bundle" | "package";
    llamaCppRelease: string;
    llamaCppCommit: string;
    llamaCppBuildNumber: number;
    node: string;
  };
}

function cpuModel(): string {
  const model = os.cpus()[0]?.model?.trim();
  return model && model.length > 0 ? model : os.arch();
}

export async function systemReport(options: { gpu: GpuChoice; probeBackends: boolean }): Promise<SystemReport> {
  const llama = await getSharedLlama(options.gpu).catch((error: unknown) => {
    throw backendUnavailable(options.gpu, error);
  });
  const { getLlamaGpuTypes, getLlama, LlamaLogLevel } = await loadNodeLlamaCpp();
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
  const pool = threadpoolStatus();
  return {
    platform: `${os.platform()} ${os.arch()} (${os.release()})`,
    cpu: { model: cpuModel(), logicalCores: os.cpus().length, mathCores: llama.cpuMathCores ?? null, features },
    ram: { totalBytes: os.totalmem(), freeBytes: os.freemem() },
    activeBackend: backendLabel(llama.gpu),
    gpuChoice: options.gpu,
    gpus,
    vram: vramState ? { totalBytes: vramState.total, usedBytes: vramState.used, freeBytes: vramState.free } : null,
    backends,
    cpuThreads: {
      persistentPool: pool.enabled,
      detail: pool.enabled ? "persistent threadpool (lmrun's shim, as llama-bench)" : `threads started per decode: shim ${pool.problem}`,
    },
    versions: {
      nodeLlamaCpp: nodeLlamaCppVersion(),
      nodeLlamaCppLoadedFrom: nodeLlamaCppLoadedFrom() ?? "package",
      llamaCppRelease: build.release,
      llamaCppCommit: build.commit,
      llamaCppBuildNumber: build.buildNumber,
      node: process.version,
    },
  };
}
