import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { CommandContext } from "../context.js";
import { UsageError } from "../../errors.js";
import { modelFacts, resolveRpc, threadsAboveCoresWarning } from "../modelOptions.js";
import { parseGpu } from "../parse.js";
import { envSetting, openSettings, readSettings } from "../../config/config.js";
import { packageRoot } from "../../config/paths.js";
import { defaultThreads } from "../../config/defaults.js";
import { threadpoolShimAvailable } from "../../engine/threadpool.js";
import type { GpuChoice } from "../../engine/types.js";
import { readInputText } from "../../io/inputFile.js";
import { statusLine } from "../../io/statusLine.js";
import { compareRecords, formatComparison, parseRecords, unmatchedTests } from "../../bench/compare.js";
import { createPrinter } from "../../bench/format.js";
import { createPeakMemoryProbe } from "../../bench/memory.js";
import { runPromptFileBench } from "./benchPromptFile.js";
import { runBench, type BenchModelSource, type BenchPhase } from "../../bench/runBench.js";
import { buildBenchParams, sweptColumns, testName, type RawBenchFlags } from "../../bench/sweep.js";
import { pickFastest, tuneParams } from "../../bench/tune.js";
import type { BenchParams, BenchSystemInfo, OutputFormat } from "../../bench/types.js";

export interface BenchFlags extends RawBenchFlags {
  output?: string;
  gpu?: string;
  rpc?: string;
  promptFile?: string;
  compare?: string;
  tune?: boolean;
  plot?: string;
}

const FORMATS: readonly OutputFormat[] = ["md", "csv", "json", "jsonl"];

const progressLine = statusLine;

function phaseText(phase: BenchPhase, repetition: number, repetitions: number): string {
  if (phase === "load") return "loading";
  if (phase === "warmup") return "warm-up";
  if (phase === "depth") return `depth fill ${repetition}/${repetitions}`;
  return `repetition ${repetition}/${repetitions}`;
}

export async function runBenchCommand(ctx: CommandContext, modelRefs: string[], flags: BenchFlags): Promise<void> {
  const rpc = resolveRpc(flags, ctx.env);
  const format = (flags.output ?? "md") as OutputFormat;
  if (!FORMATS.includes(format)) throw new UsageError(`-o "${flags.output}" is not an output format`, `Use one of ${FORMATS.join(", ")}`);
  const settings = await readSettings(ctx.env);
  const threadsChosen = envSetting<number>(ctx.env, "LMRUN_THREADS") ?? settings.threads;
  const persistentPool = threadpoolShimAvailable(ctx.env);
  const threadsDefault = threadsChosen ?? defaultThreads(undefined, undefined, persistentPool);
  if (flags.tune && modelRefs.length !== 1) throw new UsageError("--tune takes exactly one model");
  if (flags.plot !== undefined) {
    if (flags.promptFile !== undefined) throw new UsageError("--plot draws llama-bench's tests, not a --prompt-file run", "Leave out one of them");
    (await import("../../plot/render.js")).chartFormat(flags.plot);
  }
  let params: BenchParams = flags.tune ? tuneSweep(modelRefs[0]!, flags, threadsDefault) : buildBenchParams(modelRefs, flags, { threads: threadsDefault });
  const threadsWarning = flags.threads !== undefined ? threadsAboveCoresWarning([["-t", Math.max(...params.nThreads)]]) : undefined;
  if (threadsWarning !== undefined) ctx.out.warn(threadsWarning);
  const oldRecords = flags.compare !== undefined ? parseRecords(await readInputText(flags.compare, { what: "results file", flag: "--compare" }), flags.compare) : undefined;
  const gpu: GpuChoice = flags.gpu !== undefined ? parseGpu(flags.gpu) : (envSetting<GpuChoice>(ctx.env, "LMRUN_GPU") ?? (settings.gpu as GpuChoice | undefined) ?? "auto");
  // With workers: the RPC engine build and the registered workers first, before anything reads a model
  // header (node-llama-cpp would load its prebuilt binding for that: a second llama.cpp in this process).
  const rpcDevices = rpc ? (await import("../../engine/model.js").then((m) => m.connectRpcWorkers(gpu, rpc, ctx.signal))).devices : [];

  const { resolveModel } = await import("../../models/resolve.js");
  const { sha256File } = await import("../../models/hash.js");
  const { checkCacheTypes, checkModelFile } = await import("../../engine/modelFile.js");
  const models = new Map<string, BenchModelSource>();
  for (const ref of params.models) {
    if (models.has(ref)) continue;
    const resolved = await resolveModel(ref, { env: ctx.env, signal: ctx.signal });
    // A missing, non-GGUF or unusable file, or a cache type it cannot hold, gets its one-line
    // explanation before anything is hashed or loaded (and before the table's header).
    const { fileInfo } = await checkModelFile(resolved.path);
    checkCacheTypes(fileInfo.metadata, path.basename(resolved.path), { k: params.typeK, v: params.typeV });
    const sha256 = (await sha256File(resolved.path, { signal: ctx.signal })).hex;
    // llama-bench records -m as typed; a catalogue name is recorded as the file it resolved to.
    models.set(ref, { displayName: /[\\/]|\.gguf$/i.test(ref) ? ref : resolved.path, path: resolved.path, sha256 });
  }

  if (!flags.tune && flags.threads === undefined && threadsChosen === undefined) {
    // The same policy as run: tiny models generate fastest on one thread (README, "Threads").
    const sizes = [...models.values()].map((m) => modelFacts(m.path).sizeBytes ?? Number.POSITIVE_INFINITY);
    const threads = defaultThreads(undefined, Math.max(...sizes), persistentPool);
    if (threads !== threadsDefault) params = { ...params, nThreads: [threads] };
  }

  if (flags.promptFile !== undefined) {
    const prompt = await readInputText(flags.promptFile, { what: "prompt file", flag: "--prompt-file" });
    if (prompt.trim() === "") throw new UsageError(`--prompt-file ${flags.promptFile} is empty`, "Give a file with the text to time");
    await runPromptFileBench(ctx, { params, models, gpu, prompt, format, rpc });
    return;
  }

  const engine = await import("../../engine/bench.js");
  const system = await import("../../engine/system.js");
  const report = await system.systemReport({ gpu, probeBackends: false });
  const systemInfo: BenchSystemInfo = {
    buildCommit: report.versions.llamaCppCommit,
    buildNumber: report.versions.llamaCppBuildNumber,
    cpuInfo: report.cpu.model,
    // As llama-bench: GPU-type devices' descriptions (an RPC device's is its endpoint), and "RPC" after the local backends.
    gpuInfo: [...report.gpus.map((g) => g.name).filter((name) => !rpcDevices.some((d) => d.description === name)), ...rpcDevices.map((d) => d.description)].join(", "),
    backends: rpcDevices.length === 0 ? report.activeBackend : report.activeBackend === "CPU" ? "RPC" : `${report.activeBackend},RPC`,
    cpuCores: report.cpu.logicalCores,
    ramBytes: report.ram.totalBytes,
    nodeLlamaCppVersion: report.versions.nodeLlamaCpp,
    llamaCppRelease: report.versions.llamaCppRelease,
    lmrunVersion: await lmrunVersion(),
    platform: report.platform,
  };
  // llama-bench shows the ngl column for any backend but the CPU alone (RPC included).
  const cpuBackend = systemInfo.backends === "CPU";
  const printer = createPrinter(format, { sweptColumns: sweptColumns(params, { threads: threadsDefault }, cpuBackend), buildCommit: systemInfo.buildCommit, buildNumber: systemInfo.buildNumber });
  const progress = progressLine(ctx);
  ctx.out.text(printer.header());
  const outcome = await runBench(
    params,
    models,
    {
      openModel: (modelPath, options) => engine.openBenchModel(modelPath, { gpu, gpuLayers: options.gpuLayers, signal: options.signal, rpc: rpc !== undefined }),
      usedVram: () => engine.usedVramBytes(gpu),
      memory: createPeakMemoryProbe(),
      system: systemInfo,
    },
    {
      onProgress: ({ index, planned, instance, phase, repetition, repetitions }) =>
        progress.show(`bench ${index}/${planned}: ${path.basename(instance.model)} ${testName(instance)} t=${instance.nThreads} ${phaseText(phase, repetition, repetitions)}`),
      onRecord: (record) => {
        progress.clear();
        ctx.out.text(printer.row(record));
      },
    },
    ctx.signal,
  );
  progress.clear();
  const partial = outcome.partial && ctx.signal.aborted ? { done: outcome.records.length, planned: outcome.planned } : null;
  ctx.out.text(printer.footer(partial));
  // A reader that went away (| head) ends the run quietly; Ctrl-C says what the table holds.
  if (ctx.stdoutClosed()) return;
  if (partial) ctx.out.warn(`interrupted: ${partial.done} of ${partial.planned} tests finished; the results above are partial`);
  for (const record of outcome.records) {
    const cv = record.avg_ts === 0 ? 0 : record.stddev_ts / record.avg_ts;
    if (cv > 0.1 && record.samples_ts.length > 1) {
      ctx.out.warn(`${testName({ nPrompt: record.n_prompt, nGen: record.n_gen, nDepth: record.n_depth })} at ${record.n_threads} threads is noisy (sd ${(cv * 100).toFixed(0)}% of the mean): raise -r or quiet the machine`);
    }
  }

  // A sweep's shape at a glance, in a terminal only (a pipe gets exactly the table).
  if (format === "md" && ctx.out.stdoutIsTTY && !oldRecords) {
    const { terminalSweepChart } = await import("../../plot/terminalChart.js");
    const chart = terminalSweepChart(outcome.records, ctx.out.color);
    if (chart !== undefined) ctx.out.text(`\n${chart}`);
  }
  if (flags.plot !== undefined && outcome.records.length > 0) {
    const { benchCompareSpec, benchSweepSpec } = await import("../../plot/benchCharts.js");
    const { writeChart } = await import("../../plot/render.js");
    await writeChart(flags.plot, oldRecords ? benchCompareSpec(oldRecords, outcome.records, path.basename(flags.compare!)) : benchSweepSpec(outcome.records));
    ctx.out.info(`chart written to ${flags.plot}`);
  }

  if (oldRecords) {
    const table = formatComparison(compareRecords(oldRecords, outcome.records));
    if (format === "md") ctx.out.text(`\n${table}`);
    else ctx.out.diag(table);
    const unmatched = unmatchedTests(oldRecords, outcome.records);
    if (unmatched.length > 0) ctx.out.warn(`not in ${flags.compare}, so not compared: ${unmatched.join(", ")}`);
  }

  if (flags.tune && !partial) {
    const best = pickFastest(outcome.records);
    if (!best) throw new UsageError("--tune could not measure both prompt and generation speed");
    const store = await openSettings(ctx.env);
    const fileName = path.basename(models.get(modelRefs[0]!)!.path);
    const tuned = { ...(store.get("tuned") ?? {}) };
    tuned[fileName] = { threads: best.threads, batchSize: best.batchSize, measuredAt: new Date().toISOString() };
    store.set("tuned", tuned);
    ctx.out.diag(
      `tuned ${fileName}: threads ${best.threads} (tg ${best.genTs.toFixed(2)} t/s), batch size ${best.batchSize} (pp ${best.promptTs.toFixed(2)} t/s); saved as the default for run and chat (\`lmrun config get tuned\` shows it, \`lmrun config unset tuned.${fileName}\` removes it)`,
    );
  }
}

async function lmrunVersion(): Promise<string> {
  try {
    return (JSON.parse(await fs.readFile(path.join(packageRoot(), "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** --tune's sweep, narrowed by whichever of -t, -b, -p, -n and -r the user gave. */
function tuneSweep(model: string, flags: BenchFlags, threadsDefault: number): BenchParams {
  const given = buildBenchParams([model], flags, { threads: threadsDefault });
  return tuneParams(model, os.availableParallelism(), {
    ...(flags.threads?.length ? { nThreads: given.nThreads } : {}),
    ...(flags.batchSize?.length ? { nBatch: given.nBatch } : {}),
    ...(flags.nPrompt?.length ? { nPrompt: given.nPrompt } : {}),
    ...(flags.nGen?.length ? { nGen: given.nGen } : {}),
    ...(flags.repetitions !== undefined ? { repetitions: given.repetitions } : {}),
  });
}
