import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { CommandContext } from "./context.js";
import { envSetting, type Settings } from "../config/config.js";
import { MIN_CONTEXT } from "../config/rules.js";
import { availableCores, DEFAULT_MAX_TOKENS, DEFAULT_SAMPLING, defaultThreads } from "../config/defaults.js";
import { threadpoolShimAvailable } from "../engine/threadpool.js";
import { parseRpcEndpoints, parseTensorSplit } from "../engine/rpc/endpoints.js";
import type { GpuChoice, GpuLayers, LoadOptions, RpcLoadOptions, SamplingOptions } from "../engine/types.js";
import { UsageError } from "../errors.js";
import { parseBytes, parseCacheType, parseGpu, parseGpuLayers, parseInteger, parseMaxTokens, parseNumber, parseSeed } from "./parse.js";

let pullAllowedByFlag = true;
/** False when the running command was given --no-pull (set by a hook that addLoadOptions installs). */
export function pullAllowed(): boolean {
  return pullAllowedByFlag;
}

/**
 * Commands whose --rpc workers move the model into a child process (rpcChild.ts, delegateRpcCommands),
 * each with the test that keeps it in this process instead for some of its flags.
 */
const rpcCommands = new WeakMap<Command, RpcInProcess>();

/** Given the flags a command is about to run with: whether it runs in this process even with RPC workers. */
export type RpcInProcess = (flags: Record<string, unknown>) => boolean;

/**
 * --rpc for a command that loads a model. Given workers, the command runs again as the RPC child, so
 * that llama.cpp's abort when a worker dies cannot take this process down; `inProcess` names the flags
 * with which it runs here after all (chat --sessions loads nothing; serve supervises its own child).
 */
export function addRpcOption(
  command: Command,
  options: { description?: string; inProcess?: RpcInProcess } = {},
): Command {
  rpcCommands.set(command, options.inProcess ?? (() => false));
  return command.option(
    "--rpc <workers>",
    options.description ?? "offload to llama.cpp RPC workers HOST:PORT[,HOST:PORT...] (default: LMRUN_RPC; needs `lmrun engine build --rpc`)",
  );
}

/** Whether this command, about to run with these flags, runs as the RPC child when given workers. */
export function delegatesRpc(command: Command): boolean {
  const inProcess = rpcCommands.get(command);
  return inProcess !== undefined && !inProcess(command.opts());
}

/** Flags shared by every command that loads a model (run, chat, serve, batch, perplexity, eval). */
export function addLoadOptions(command: Command, rpc: { inProcess?: RpcInProcess } = {}): Command {
  command.hook("preAction", (_command, action) => {
    pullAllowedByFlag = (action.opts() as { pull?: boolean }).pull !== false;
  });
  command
    .option("--no-pull", "fail instead of downloading a model that is not in the store yet")
    .option("-c, --ctx <tokens>", "context size in tokens (default: the model's, capped at 4096)", parseInteger(MIN_CONTEXT, 10_000_000))
    .option("-t, --threads <n>", "CPU threads for generating tokens (default: every core on 2 cores or fewer, 1 for models under 32 MB, else half the cores; see README, Threads)", parseInteger(1, 1024))
    .option("--threads-batch <n>", "CPU threads for prompt processing (llama.cpp: -tb; default: all cores)", parseInteger(1, 1024))
    .option("--gpu <backend>", "compute backend: auto, cuda, vulkan, metal or cpu", parseGpu)
    .option("--gpu-layers <n>", "layers to offload to the GPU: a number, max (or -1) or auto (llama.cpp: -ngl)", parseGpuLayers)
    .option("-b, --batch-size <n>", "tokens evaluated per batch", parseInteger(1, 1_000_000))
    .option("--cache-type-k <type>", "K cache type: f16, q8_0, q4_0, … (llama.cpp: -ctk; default f16)", parseCacheType)
    .option("--cache-type-v <type>", "V cache type (llama.cpp: -ctv; default f16)", parseCacheType)
    .option("--max-ram <size>", "refuse to load a model whose estimate exceeds this (e.g. 8GB; default: free memory)", parseBytes);
  return addRpcOption(command, rpc).option("--tensor-split <proportions>", "with --rpc: each device's share of the layers, e.g. 3,1 (llama.cpp's -ts; default: by free memory)");
}

/** Sampling flags shared by run, chat and serve (whose requests generate until the context is full unless they say otherwise, as llama-server's and ollama's do). */
export function addSamplingOptions(command: Command, maxTokensDefault = String(DEFAULT_MAX_TOKENS)): Command {
  return command
    .option("-n, --max-tokens <n>", `maximum tokens to generate; -1: until the model stops or the context is full (default ${maxTokensDefault})`, parseMaxTokens)
    .option("--temp <t>", `temperature; 0 is greedy and deterministic (default ${DEFAULT_SAMPLING.temperature})`, parseNumber(0, 100))
    .option("--top-k <k>", `top-k sampling; 0 disables (default ${DEFAULT_SAMPLING.topK})`, parseInteger(0, 1_000_000))
    .option("--top-p <p>", `top-p sampling; 1 disables (default ${DEFAULT_SAMPLING.topP})`, parseNumber(0, 1))
    .option("--min-p <p>", `min-p sampling; 0 disables (default ${DEFAULT_SAMPLING.minP})`, parseNumber(0, 1))
    .option("--repeat-penalty <r>", `repetition penalty; 1 disables (default ${DEFAULT_SAMPLING.repeatPenalty})`, parseNumber(0, 10))
    .option("--seed <n>", "sampling seed, for reproducible output (default and -1: random, reported by --json)", parseSeed);
}

export interface LoadFlags {
  ctx?: number;
  threads?: number;
  threadsBatch?: number;
  gpu?: GpuChoice;
  gpuLayers?: GpuLayers;
  batchSize?: number;
  maxRam?: number;
  cacheTypeK?: string;
  cacheTypeV?: string;
  rpc?: string;
  tensorSplit?: string;
}

export interface SamplingFlags {
  maxTokens?: number;
  temp?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  seed?: number;
}

/** What the defaults depend on: the file name (tuned settings are keyed by it) and its size. */
export interface ModelFacts {
  fileName: string;
  sizeBytes?: number | undefined;
}

export function modelFacts(modelPath: string): ModelFacts {
  let sizeBytes: number | undefined;
  try {
    sizeBytes = fs.statSync(modelPath).size;
  } catch {
    sizeBytes = undefined; // loading will say what is wrong with the file
  }
  return { fileName: path.basename(modelPath), sizeBytes };
}

/** flag > LMRUN_* environment > settings file > tuned value for this model > built-in default. */
export function resolveLoadOptions(
  flags: LoadFlags,
  env: NodeJS.ProcessEnv,
  settings: Settings,
  verbose: boolean,
  model?: ModelFacts,
): LoadOptions {
  return resolveLoadOptionsAndTuning(flags, env, settings, verbose, model).options;
}

/** What `bench --tune` saved for a model and this load took from it. */
export interface AppliedTuning {
  threads?: number;
  batchThreads?: number;
  batchSize?: number;
}

/** resolveLoadOptions, and which of its values came from the model's tuned setting (so that run can say so). */
export function resolveLoadOptionsAndTuning(
  flags: LoadFlags,
  env: NodeJS.ProcessEnv,
  settings: Settings,
  verbose: boolean,
  model?: ModelFacts,
): { options: LoadOptions; tuned: AppliedTuning | undefined } {
  const tuned = model !== undefined ? settings.tuned?.[model.fileName] : undefined;
  // Settings were checked when read (readSettings); LMRUN_* values are checked here.
  const chosenThreads = flags.threads ?? envSetting<number>(env, "LMRUN_THREADS") ?? settings.threads;
  // As llama.cpp's -tb: prompt batches follow -t unless told otherwise.
  const chosenBatchThreads = flags.threadsBatch ?? flags.threads ?? envSetting<number>(env, "LMRUN_THREADS_BATCH");
  const applied: AppliedTuning = {
    ...(chosenThreads === undefined && tuned?.threads !== undefined ? { threads: tuned.threads } : {}),
    ...(chosenBatchThreads === undefined && tuned?.batchThreads !== undefined ? { batchThreads: tuned.batchThreads } : {}),
    ...(flags.batchSize === undefined && tuned?.batchSize !== undefined ? { batchSize: tuned.batchSize } : {}),
  };
  const options: LoadOptions = {
    gpu: flags.gpu ?? envSetting<GpuChoice>(env, "LMRUN_GPU") ?? (settings.gpu as GpuChoice | undefined) ?? "auto",
    gpuLayers: flags.gpuLayers ?? "auto",
    contextSize: flags.ctx ?? envSetting<number>(env, "LMRUN_CTX") ?? settings.ctx,
    threads: chosenThreads ?? applied.threads ?? defaultThreads(undefined, model?.sizeBytes, threadpoolShimAvailable(env)),
    // A count the user gave is used as given; lmrun's own (or a tuned one) may drop while other work keeps the cores busy.
    adaptiveThreads: chosenThreads === undefined,
    batchThreads: chosenBatchThreads ?? applied.batchThreads,
    batchSize: flags.batchSize ?? applied.batchSize,
    maxRamBytes: flags.maxRam,
    cacheTypeK: flags.cacheTypeK,
    cacheTypeV: flags.cacheTypeV,
    verbose,
    rpc: resolveRpc(flags, env),
  };
  return { options, tuned: Object.keys(applied).length > 0 ? applied : undefined };
}

/** The line run and chat print when a tuned setting is applied. */
export function describeAppliedTuning(fileName: string, tuned: AppliedTuning): string {
  const parts = [
    tuned.threads !== undefined ? `threads ${tuned.threads}` : "",
    tuned.batchThreads !== undefined ? `batch threads ${tuned.batchThreads}` : "",
    tuned.batchSize !== undefined ? `batch size ${tuned.batchSize}` : "",
  ].filter(Boolean);
  return `using ${parts.join(", ")} from \`lmrun bench --tune\` for ${fileName} (flags override it; \`lmrun config unset tuned.${fileName}\` removes it)`;
}

/** The --seed given, undefined for none or -1 (llama.cpp's "random"). */
export function givenSeed(flags: SamplingFlags): number | undefined {
  return flags.seed !== undefined && flags.seed >= 0 ? flags.seed : undefined;
}

/**
 * One warning line when a thread count is above the cores: llama.cpp's threads meet at spinning
 * barriers hundreds of times per token, so extra ones only wait for each other (a 64-thread run on
 * 2 cores took 49 s for 2 tokens and drove the load average to 37).
 */
export function threadsAboveCoresWarning(counts: Array<[flag: string, value: number | undefined]>, cores: number = availableCores()): string | undefined {
  const over = counts.filter((entry): entry is [string, number] => entry[1] !== undefined && entry[1] > cores);
  if (over.length === 0) return undefined;
  const given = over.map(([flag, value]) => `${flag} ${value}`).join(" and ");
  return `${given} ${over.length > 1 ? "ask" : "asks"} for more threads than this machine's ${cores} cores: the extra threads only wait for each other and make every token slower; use ${cores} or fewer`;
}

/** The warning above for -t / --threads-batch, on stderr. */
export function warnIfThreadsAboveCores(ctx: Pick<CommandContext, "out">, flags: Pick<LoadFlags, "threads" | "threadsBatch">): void {
  const warning = threadsAboveCoresWarning([
    ["-t", flags.threads],
    ["--threads-batch", flags.threadsBatch],
  ]);
  if (warning !== undefined) ctx.out.warn(warning);
}

/** --rpc, else LMRUN_RPC (an empty --rpc "" turns LMRUN_RPC off), with --tensor-split. */
export function resolveRpc(flags: Pick<LoadFlags, "rpc" | "tensorSplit">, env: NodeJS.ProcessEnv): RpcLoadOptions | undefined {
  const fromFlag = flags.rpc !== undefined;
  const raw = fromFlag ? flags.rpc : env.LMRUN_RPC;
  if (raw === undefined || raw.trim() === "") {
    if (flags.tensorSplit !== undefined) throw new UsageError("--tensor-split needs --rpc", "lmrun splits layers only across RPC workers");
    return undefined;
  }
  const endpoints = parseRpcEndpoints(raw, fromFlag ? "--rpc" : "LMRUN_RPC");
  return { endpoints, ...(flags.tensorSplit !== undefined ? { tensorSplit: parseTensorSplit(flags.tensorSplit) } : {}) };
}

export function resolveSampling(flags: SamplingFlags, settings: Settings): SamplingOptions & { maxTokens: number } {
  return {
    temperature: flags.temp ?? settings.temperature ?? DEFAULT_SAMPLING.temperature,
    topK: flags.topK ?? settings.topK ?? DEFAULT_SAMPLING.topK,
    topP: flags.topP ?? settings.topP ?? DEFAULT_SAMPLING.topP,
    minP: flags.minP ?? settings.minP ?? DEFAULT_SAMPLING.minP,
    repeatPenalty: flags.repeatPenalty ?? settings.repeatPenalty ?? DEFAULT_SAMPLING.repeatPenalty,
    // A random seed is drawn here so that --json can report it and the run can be repeated.
    seed: givenSeed(flags) ?? Math.floor(Math.random() * 2 ** 32),
    maxTokens: flags.maxTokens ?? settings.maxTokens ?? DEFAULT_MAX_TOKENS,
  };
}
