import type { BenchContextHandle, BenchModelHandle, DecodePath } from "../engine/bench.js";
import type { PeakMemoryProbe } from "./memory.js";
import { mean, sampleStdDev, tokensPerSecond } from "./stats.js";
import { expandInstances } from "./sweep.js";
import type { BenchInstance, BenchParams, BenchRecord, BenchSystemInfo } from "./types.js";

/**
 * The benchmark job, llama-bench's main loop: for each test, a fresh context of n_prompt + n_gen + n_depth
 * tokens, a warm-up (the prompt, then one generated token), then r repetitions, each starting from an
 * empty cache (and the depth prefill, untimed). Only the decodes are timed. Results stream out as
 * events; an abort stops between decodes and the finished rows stand, marked partial by the caller.
 */

export interface BenchModelSource {
  /** What the record calls the file (llama-bench prints -m as given). */
  displayName: string;
  path: string;
  sha256: string | null;
}

export interface BenchDeps {
  openModel(path: string, options: { gpuLayers: number; signal: AbortSignal }): Promise<BenchModelHandle>;
  usedVram(): Promise<number | null>;
  memory: PeakMemoryProbe;
  system: BenchSystemInfo;
  now?: () => bigint;
}

export type BenchPhase = "load" | "warmup" | "depth" | "run";

export interface BenchEvents {
  onProgress?(progress: { index: number; planned: number; instance: BenchInstance; phase: BenchPhase; repetition: number; repetitions: number }): void;
  onRecord?(record: BenchRecord): void;
}

export interface BenchOutcome {
  records: BenchRecord[];
  planned: number;
  /** True when the signal stopped the run before every test finished. */
  partial: boolean;
}

export function isAbort(error: unknown, signal: AbortSignal): boolean {
  // Only a real cancellation: an error that merely mentions "abort" is still an error.
  return signal.aborted || (error instanceof Error && error.name === "AbortError");
}

export async function runBench(
  params: BenchParams,
  models: ReadonlyMap<string, BenchModelSource>,
  deps: BenchDeps,
  events: BenchEvents,
  signal: AbortSignal,
): Promise<BenchOutcome> {
  const instances = expandInstances(params);
  const records: BenchRecord[] = [];
  const now = deps.now ?? (() => process.hrtime.bigint());
  let loaded: { key: string; handle: BenchModelHandle } | undefined;
  // VRAM is reported as what a test holds: the device's use minus its use before any model loaded
  // (the driver, the backend's own context and other processes are not the test's).
  const vramBaseline = await deps.usedVram().catch(() => null);
  try {
    for (const [index, instance] of instances.entries()) {
      if (signal.aborted) break;
      const progress = (phase: BenchPhase, repetition = 0) =>
        events.onProgress?.({ index: index + 1, planned: instances.length, instance, phase, repetition, repetitions: params.repetitions });
      const source = models.get(instance.model);
      if (!source) throw new Error(`internal: no resolved model for ${instance.model}`);
      // Keep one model loaded across tests while its load parameters stay the same, as llama-bench does.
      const key = `${source.path}\0${instance.nGpuLayers}`;
      if (loaded?.key !== key) {
        progress("load");
        if (loaded) await loaded.handle.dispose();
        loaded = undefined;
        loaded = { key, handle: await deps.openModel(source.path, { gpuLayers: instance.nGpuLayers, signal }) };
      }
      const model = loaded.handle;
      deps.memory.reset();
      const context = await model.createContext({
        contextSize: instance.nPrompt + instance.nGen + instance.nDepth,
        nBatch: instance.nBatch,
        nUbatch: instance.nUbatch,
        threads: instance.nThreads,
        flashAttn: instance.flashAttn,
        typeK: instance.typeK,
        typeV: instance.typeV,
        signal,
      });
      let samplesNs: number[];
      let peakVram: number | null = null;
      const testTime = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
      try {
        samplesNs = await measure(context, instance, params, progress, now, signal);
        const usedVram = await deps.usedVram().catch(() => null);
        peakVram = usedVram !== null && vramBaseline !== null ? Math.max(0, usedVram - vramBaseline) : usedVram;
      } finally {
        await context.dispose();
      }
      if (samplesNs.length < params.repetitions) break; // aborted mid-test: the row is not finished
      const record = toRecord(instance, source, model, deps.system, samplesNs, testTime, {
        peakRss: deps.memory.peakBytes(),
        peakVram,
        decodePath: context.decodePath,
      });
      records.push(record);
      events.onRecord?.(record);
    }
  } catch (error) {
    if (!isAbort(error, signal)) throw error;
  } finally {
    if (loaded) await loaded.handle.dispose();
  }
  return { records, planned: instances.length, partial: records.length < instances.length };
}

async function measure(
  context: BenchContextHandle,
  instance: BenchInstance,
  params: BenchParams,
  progress: (phase: BenchPhase, repetition?: number) => void,
  now: () => bigint,
  signal: AbortSignal,
): Promise<number[]> {
  await context.clear();
  if (params.warmup) {
    progress("warmup");
    if (instance.nPrompt > 0) await context.prompt(instance.nPrompt, instance.nBatch);
    if (instance.nGen > 0) await context.generate(1);
  }
  const samples: number[] = [];
  for (let rep = 0; rep < params.repetitions; rep++) {
    if (signal.aborted) break;
    await context.clear();
    if (instance.nDepth > 0) {
      progress("depth", rep + 1);
      await context.prompt(instance.nDepth, instance.nBatch);
    }
    progress("run", rep + 1);
    const start = now();
    if (instance.nPrompt > 0) await context.prompt(instance.nPrompt, instance.nBatch);
    if (instance.nGen > 0) await context.generate(instance.nGen);
    samples.push(Number(now() - start));
  }
  return samples;
}

export function toRecord(
  instance: BenchInstance,
  source: BenchModelSource,
  model: Pick<BenchModelHandle, "modelType" | "modelSize" | "modelNParams">,
  system: BenchSystemInfo,
  samplesNs: number[],
  testTime: string,
  extra: { peakRss: number | null; peakVram: number | null; decodePath: DecodePath },
): BenchRecord {
  const samplesTs = tokensPerSecond(instance.nPrompt + instance.nGen, samplesNs);
  return {
    build_commit: system.buildCommit,
    build_number: system.buildNumber,
    cpu_info: system.cpuInfo,
    gpu_info: system.gpuInfo,
    backends: system.backends,
    model_filename: source.displayName,
    model_type: model.modelType,
    model_size: model.modelSize,
    model_n_params: model.modelNParams,
    n_batch: instance.nBatch,
    n_ubatch: instance.nUbatch,
    n_threads: instance.nThreads,
    cpu_mask: "0x0",
    cpu_strict: false,
    poll: 50,
    type_k: instance.typeK,
    type_v: instance.typeV,
    n_gpu_layers: instance.nGpuLayers,
    n_cpu_moe: 0,
    split_mode: "layer",
    main_gpu: 0,
    no_kv_offload: false,
    flash_attn: instance.flashAttn,
    devices: "auto",
    tensor_split: "0.00",
    tensor_buft_overrides: "none",
    load_mode: "auto",
    lazy_mode: "auto",
    embeddings: false,
    no_op_offload: 0,
    no_host: false,
    fit_target: 0,
    fit_min_ctx: 0,
    n_prompt: instance.nPrompt,
    n_gen: instance.nGen,
    n_depth: instance.nDepth,
    test_time: testTime,
    avg_ns: Math.floor(mean(samplesNs)),
    stddev_ns: Math.floor(sampleStdDev(samplesNs)),
    avg_ts: mean(samplesTs),
    stddev_ts: sampleStdDev(samplesTs),
    samples_ns: samplesNs,
    samples_ts: samplesTs,
    lmrun: {
      model_sha256: source.sha256,
      peak_rss_bytes: extra.peakRss,
      peak_vram_bytes: extra.peakVram,
      decode_path: extra.decodePath,
      system: {
        cpu: system.cpuInfo,
        cpu_cores: system.cpuCores,
        ram_bytes: system.ramBytes,
        backend: system.backends,
        gpu: system.gpuInfo,
        node_llama_cpp: system.nodeLlamaCppVersion,
        llama_cpp_release: system.llamaCppRelease,
        lmrun: system.lmrunVersion,
        platform: system.platform,
      },
    },
  };
}
