import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Llama, LlamaLogLevel } from "node-llama-cpp";
import { lmrunHome, packageRoot } from "../config/paths.js";
import { gpuPlatformProblem } from "../config/rules.js";
import { loadThreadpoolShim } from "./threadpool.js";
import { rememberBindingChecks } from "./bindingCheck.js";
import { LmrunError, UsageError } from "../errors.js";
import { driverFingerprint, gpuCheckKey, readGpuCheck, runGpuProbe, saveGpuCheck, type GpuCheckOutcome } from "./gpuCheck.js";
import { emitEngineNotice } from "./notices.js";
import type { GpuChoice } from "./types.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";

/**
 * One llama.cpp binding per process, created on first use.
 * Its logs go to a sink: stderr with --verbose, otherwise a small ring buffer
 * that error messages can draw on (llama.cpp explains load failures only in its log).
 */
export interface LlamaLogSink {
  verbose: boolean;
  write(line: string): void;
}

const recentLogs: string[] = [];
const RECENT_LOG_LIMIT = 40;
let sink: LlamaLogSink = { verbose: false, write: () => {} };
let llamaPromise: Promise<Llama> | undefined;
let llamaGpu: GpuChoice | undefined;
let llamaEngine: string | undefined;

/** An engine build to load instead of the prebuilt binaries (engines.ts): its backend and cmake options. */
export interface EngineBuildChoice {
  id: string;
  gpu: "cpu" | "cuda" | "vulkan";
  cmakeOptions: Record<string, string>;
}

export function setLlamaLogSink(next: LlamaLogSink): void {
  sink = next;
}

export function recentLlamaLogs(): string[] {
  return [...recentLogs];
}

export function clearRecentLlamaLogs(): void {
  recentLogs.length = 0;
}

function onLog(level: LlamaLogLevel, message: string): void {
  const line = message.replace(/\s+$/, "");
  if (line.length === 0) return;
  recentLogs.push(`[${level}] ${line}`);
  if (recentLogs.length > RECENT_LOG_LIMIT) recentLogs.shift();
  if (sink.verbose) sink.write(`llama.cpp ${level}: ${line}\n`);
}

/**
 * node-llama-cpp quietly turns a backend this platform cannot have into "auto" (--gpu metal on
 * Linux would pick CUDA); an explicit choice that cannot be honoured is a usage error instead.
 */
export function checkGpuChoiceForPlatform(gpu: GpuChoice, platform: NodeJS.Platform = process.platform, arch: string = process.arch): void {
  const problem = gpuPlatformProblem(gpu, platform);
  if (problem === undefined) return;
  if (gpu === "metal") throw new UsageError(`--gpu metal: ${problem}, and this is ${platform}`, "Use --gpu auto, cuda, vulkan or cpu");
  throw new UsageError(`--gpu ${gpu}: ${problem}`, "Use --gpu auto, metal or cpu");
}

/**
 * The binding: node-llama-cpp's prebuilt binaries, or the engine build given (loaded with the option
 * that refuses to fall back to a prebuilt binary without it: a prebuilt has no RPC backend).
 */
export async function getSharedLlama(gpu: GpuChoice, engine?: EngineBuildChoice): Promise<Llama> {
  if (llamaPromise !== undefined) {
    // Code that knows nothing of engine builds (reports, VRAM probes) gets the one this process chose.
    if (llamaGpu !== gpu || (engine !== undefined && llamaEngine !== engine.id)) {
      const what = (g: GpuChoice | undefined, e: string | undefined) => (e ? `the engine build ${e}` : `${g}`);
      throw new Error(`llama.cpp was already initialised for ${what(llamaGpu, llamaEngine)}; cannot switch to ${what(gpu, engine?.id)} in one process`);
    }
    return llamaPromise;
  }
  checkGpuChoiceForPlatform(gpu);
  llamaGpu = gpu;
  llamaEngine = engine?.id;
  llamaPromise = engine
    ? chooseBackend(engine.gpu, { create: () => createLlama(engine.gpu, [], engine), check: checkGpuBackend, notice: emitEngineNotice })
    : chooseBackend(gpu, { create: createLlama, check: checkGpuBackend, notice: emitEngineNotice });
  try {
    return await llamaPromise;
  } catch (error) {
    llamaPromise = undefined;
    llamaGpu = undefined;
    llamaEngine = undefined;
    throw error;
  }
}

type GpuType = "cuda" | "vulkan" | "metal";

/** What chooseBackend needs of a loaded binding (a Llama, or a stand-in in tests). */
export interface BackendHandle {
  readonly gpu: GpuType | false;
  dispose(): Promise<void>;
}

export interface BackendChoiceDeps<T extends BackendHandle> {
  create(choice: GpuChoice, exclude: GpuType[]): Promise<T>;
  /** The backend's test-run outcome (fresh: it ran just now); undefined when not checked. */
  check(llama: T): Promise<(GpuCheckOutcome & { fresh: boolean }) | undefined>;
  notice(notice: { level: "info" | "warn"; message: string }): void;
}

/**
 * An explicit backend must pass its test run or it is an error; `auto` takes node-llama-cpp's order
 * (CUDA, Vulkan, CPU) and skips each GPU backend whose test run fails, saying so (a warning the
 * first time, a TTY-only note once the failure is remembered).
 */
export async function chooseBackend<T extends BackendHandle>(choice: GpuChoice, deps: BackendChoiceDeps<T>): Promise<T> {
  if (choice !== "auto") {
    const llama = await deps.create(choice, []);
    const outcome = await deps.check(llama);
    if (!outcome || outcome.ok) return llama;
    await llama.dispose().catch(() => {});
    throw new LmrunError(`the ${backendLabel(llama.gpu)} backend fails on this machine: ${outcome.reason}`, {
      hint: `${gpuFixHint(llama.gpu)}, or use --gpu cpu`,
    });
  }
  const failed: GpuType[] = [];
  for (;;) {
    const llama = await deps.create(choice, failed);
    const outcome = await deps.check(llama);
    if (!outcome || outcome.ok || llama.gpu === false || failed.includes(llama.gpu)) return llama;
    failed.push(llama.gpu);
    deps.notice({
      level: outcome.fresh ? "warn" : "info",
      message: `the ${backendLabel(llama.gpu)} backend failed a test run (${outcome.reason}); trying the next backend. ${gpuFixHint(llama.gpu)}`,
    });
    await llama.dispose().catch(() => {});
  }
}

async function createLlama(gpu: GpuChoice, exclude: GpuType[] = [], engine?: EngineBuildChoice): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = await loadNodeLlamaCpp();
  // node-llama-cpp's binary check in a child process costs ~0.5 s a start: passed checks are remembered.
  rememberBindingChecks(path.join(lmrunHome(), "binding-check.json"));
  const llama = await getLlama({
    gpu: gpu === "cpu" ? false : gpu === "auto" && exclude.length > 0 ? { type: "auto", exclude } : gpu,
    ...(engine
      ? {
          // Only this build: node-llama-cpp finds it by these options; no prebuilt binary may stand in for it.
          cmakeOptions: engine.cmakeOptions,
          existingPrebuiltBinaryMustMatchBuildOptions: true,
          usePrebuiltBinaries: false,
        }
      : {}),
    // The logger decides what is shown; llama.cpp must hand everything over.
    logLevel: sink.verbose ? LlamaLogLevel.debug : LlamaLogLevel.warn,
    logger: onLog,
    // Never compile llama.cpp behind the user's back: use the prebuilt binaries npm installed.
    build: "never",
    progressLogs: false,
    // No thread cap: each context asks for exactly the threads we chose.
    maxThreads: 0,
  });
  // After the binding loaded (its llama.cpp release decides) and before any decode.
  loadThreadpoolShim({ llamaCppRelease: llama.llamaCppRelease.release });
  return llama;
}

/** What fixes a GPU backend whose prebuilt binary does not run here: a newer driver, or a local build (which node-llama-cpp then prefers). */
export function gpuFixHint(gpu: GpuType | false | string): string {
  if (gpu === "cuda") {
    return "Update the NVIDIA driver, or build llama.cpp for this machine with `lmrun engine build --gpu cuda` (needs the CUDA toolkit and cmake; lmrun then uses that build)";
  }
  if (gpu === "vulkan") return "Update the GPU driver, or build llama.cpp for this machine with `lmrun engine build --gpu vulkan`";
  return "Update the GPU driver";
}

/** How a backend is named in output (llama-bench's `backends` column spelling). */
export function backendLabel(gpu: string | false): string {
  if (gpu === false) return "CPU";
  return { cuda: "CUDA", vulkan: "Vulkan", metal: "Metal" }[gpu] ?? gpu;
}

async function gpuCheckIdentity(llama: Llama): Promise<{ key: string; devices: string[]; cacheFile: string }> {
  const { nodeLlamaCppVersion } = await import("./binding.js");
  const devices = await llama.getGpuDeviceNames().catch(() => [] as string[]);
  // A local build (node-llama-cpp source build) is another binary than the prebuilt one: test it afresh.
  const binding = `${nodeLlamaCppVersion()} ${llama.buildType} ${JSON.stringify(llama.cmakeOptions)}`;
  const key = gpuCheckKey({ backend: String(llama.gpu), bindingVersion: binding, devices, driver: await driverFingerprint() });
  return { key, devices, cacheFile: path.join(lmrunHome(), "gpu-check.json") };
}

/** The remembered outcome of a backend's test run on this machine, if it ever ran. */
export async function cachedGpuCheck(llama: Llama): Promise<GpuCheckOutcome | undefined> {
  if (llama.gpu === false) return undefined;
  const { key, cacheFile } = await gpuCheckIdentity(llama);
  return readGpuCheck(cacheFile, key);
}

/**
 * The first use of a GPU backend (per device, driver and binding version) runs a test in a child
 * process; later uses read the remembered outcome. Undefined for the CPU or with LMRUN_GPU_CHECK=0.
 */
async function checkGpuBackend(llama: Llama): Promise<(GpuCheckOutcome & { fresh: boolean }) | undefined> {
  if (llama.gpu === false || process.env.LMRUN_GPU_CHECK === "0") return undefined;
  const backend = String(llama.gpu);
  const { key, devices, cacheFile } = await gpuCheckIdentity(llama);
  const cached = await readGpuCheck(cacheFile, key);
  if (cached) {
    return { ...cached, fresh: false };
  }
  emitEngineNotice({ level: "info", message: `testing the ${backendLabel(llama.gpu)} backend on ${devices.join(", ") || "this GPU"} (first use only)…` });
  const outcome = await runGpuProbe({
    backend,
    modelPath: path.join(packageRoot(), "assets", "models", "stories260K-Q8_0.gguf"),
    childScript: fileURLToPath(new URL("./gpuProbeChild.js", import.meta.url)),
    // The first run of a CUDA build may JIT-compile its kernels for this card.
    timeoutMs: 300_000,
  });
  await saveGpuCheck(cacheFile, key, outcome).catch(() => {});
  return { ...outcome, fresh: true };
}

const GPU_LABELS: Record<GpuChoice, string> = { auto: "a GPU", cuda: "CUDA", vulkan: "Vulkan", metal: "Metal", cpu: "CPU" };

/** getSharedLlama's failure as one line for the user (node-llama-cpp's NoBinaryFoundError says only its name). */
export function backendUnavailable(gpu: GpuChoice, error: unknown): LmrunError {
  if (error instanceof LmrunError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const noBinary = (error as { name?: string } | null)?.name === "NoBinaryFoundError" || message === "NoBinaryFoundError";
  // NoBinaryFoundError: no installed build of that backend loads here (missing, or its driver/runtime is not on the machine).
  const anyBuild = gpu === "auto" || gpu === "cpu";
  const why = !noBinary
    ? message
    : anyBuild
      ? "none of the llama.cpp builds node-llama-cpp ships loads here, not even the CPU one"
      : `none of node-llama-cpp's ${GPU_LABELS[gpu]} builds of llama.cpp loads here (is the ${GPU_LABELS[gpu]} driver installed?)`;
  return new LmrunError(`cannot ${gpu === "auto" ? "run llama.cpp" : `use ${GPU_LABELS[gpu]}`} on this machine: ${why}`, {
    hint: noBinary && gpu !== "auto" && gpu !== "cpu"
      ? `Use --gpu auto or --gpu cpu; with the driver installed, a build for this machine is made by: lmrun engine build --gpu ${gpu}`
      : noBinary
        ? // Not even the CPU build loads (an old glibc, an unusual CPU): node-llama-cpp's install script would have built one, but npm 11 runs it only when allowed.
          "No prebuilt llama.cpp runs on this machine. Build one (needs cmake and a C++ compiler): reinstall with `npm install -g lmrun --allow-scripts=node-llama-cpp`, or run `lmrun engine build`"
        : "Use --gpu auto or --gpu cpu (lmrun info lists the backends that load here)",
    cause: error,
  });
}
