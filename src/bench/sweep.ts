import { UsageError } from "../errors.js";
import type { BenchInstance, BenchParams, FlashAttn } from "./types.js";

/**
 * Pure parsing of llama-bench's value syntax and expansion into tests.
 * Every flag takes a comma list, may be repeated (values accumulate), and numeric flags accept
 * llama-bench's ranges: `first-last` (step 1), `first-last+step`, `first-last*factor`.
 */

/** llama-bench's parse_int_range, same grammar: first[-last[(+|*)step]], comma separated. */
export function parseIntRange(raw: string, flag: string, allowNegative = false): number[] {
  const item = allowNegative ? /^(-?\d+)(?:-(\d+)(?:([+*])(\d+))?)?(?:,|$)/ : /^(\d+)(?:-(\d+)(?:([+*])(\d+))?)?(?:,|$)/;
  const result: number[] = [];
  let rest = raw.trim();
  if (rest === "") throw new UsageError(`${flag} needs a value`, `Example: ${flag} 512 or ${flag} 128,256 or ${flag} 64-512*2`);
  while (rest.length > 0) {
    const match = item.exec(rest);
    if (!match) {
      throw new UsageError(`${flag} "${raw}" is not a number, list or range`, `Use a number, a list (${flag} 1,2,4) or a range (${flag} 1-8+1, ${flag} 64-512*2)`);
    }
    const first = Number(match[1]);
    const last = match[2] !== undefined ? Number(match[2]) : first;
    const op = match[3] ?? "+";
    const step = match[4] !== undefined ? Number(match[4]) : 1;
    if (last < first) throw new UsageError(`${flag} range "${match[0].replace(/,$/, "")}" ends before it starts`);
    for (let i = first; i <= last; ) {
      result.push(i);
      const next = op === "+" ? i + step : i * step;
      if (next <= i) throw new UsageError(`${flag} range "${match[0].replace(/,$/, "")}" never advances`, "Use a step of at least 1 (+) or 2 (*)");
      if (result.length > 10_000) throw new UsageError(`${flag} "${raw}" expands to more than 10000 values`);
      i = next;
    }
    rest = rest.slice(match[0].length);
    if (match[0].endsWith(",") && rest.length === 0) throw new UsageError(`${flag} "${raw}" ends with a comma`);
  }
  return result;
}

/** `-pg pp,tg`: exactly two non-negative whole numbers. */
export function parsePromptGen(raw: string): [number, number] {
  const match = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(raw);
  if (!match) throw new UsageError(`-pg "${raw}" must be two numbers: prompt,generation`, "Example: -pg 512,128");
  return [Number(match[1]), Number(match[2])];
}

/** `-fa on|off|auto|1|0|-1`, comma list. */
export function parseFlashAttn(raw: string): FlashAttn[] {
  return raw.split(",").map((part) => {
    const value = part.trim().toLowerCase();
    if (value === "on" || value === "1" || value === "true" || value === "enabled") return 1;
    if (value === "off" || value === "0" || value === "false" || value === "disabled") return 0;
    if (value === "auto" || value === "-1") return -1;
    throw new UsageError(`-fa "${part}" is not on, off or auto`);
  });
}

/** The KV cache types llama-bench accepts for -ctk/-ctv (ggml type names). */
export const CACHE_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"] as const;

export function parseCacheTypes(raw: string, flag: string): string[] {
  return raw.split(",").map((part) => {
    const value = part.trim().toLowerCase();
    if (!(CACHE_TYPES as readonly string[]).includes(value)) {
      throw new UsageError(`${flag} "${part}" is not a cache type`, `Use one of ${CACHE_TYPES.join(", ")}`);
    }
    return value;
  });
}

/** Raw flag strings as commander collects them (each repeatable). */
export interface RawBenchFlags {
  nPrompt?: string[];
  nGen?: string[];
  pg?: string[];
  nDepth?: string[];
  batchSize?: string[];
  ubatchSize?: string[];
  cacheTypeK?: string[];
  cacheTypeV?: string[];
  threads?: string[];
  nGpuLayers?: string[];
  flashAttn?: string[];
  repetitions?: string;
  warmup?: boolean;
}

export interface BenchDefaults {
  threads: number;
}

/** llama-bench's defaults (cmd_params_defaults); threads is the caller's choice. */
export const LLAMA_BENCH_DEFAULTS = {
  nPrompt: 512,
  nGen: 128,
  nDepth: 0,
  nBatch: 2048,
  nUbatch: 512,
  typeK: "f16",
  typeV: "f16",
  nGpuLayers: -1,
  flashAttn: -1 as FlashAttn,
  repetitions: 5,
} as const;

function ints(values: string[] | undefined, flag: string, fallback: number[], options: { min: number; allowNegative?: boolean }): number[] {
  if (values === undefined || values.length === 0) return fallback;
  const parsed = values.flatMap((v) => parseIntRange(v, flag, options.allowNegative === true));
  for (const value of parsed) {
    if (value < options.min) throw new UsageError(`${flag} ${value} is too small: it must be at least ${options.min}`);
  }
  return parsed;
}

/** Turns raw flags into validated parameter lists. Throws UsageError with a hint on bad input. */
export function buildBenchParams(models: string[], flags: RawBenchFlags, defaults: BenchDefaults): BenchParams {
  if (models.length === 0) throw new UsageError("no model given", "Example: lmrun bench tiny");
  const explicitP = flags.nPrompt !== undefined && flags.nPrompt.length > 0;
  const explicitN = flags.nGen !== undefined && flags.nGen.length > 0;
  const explicitPg = flags.pg !== undefined && flags.pg.length > 0;
  const nPrompt = ints(flags.nPrompt, "-p", [LLAMA_BENCH_DEFAULTS.nPrompt], { min: 0 });
  const nGen = ints(flags.nGen, "-n", [LLAMA_BENCH_DEFAULTS.nGen], { min: 0 });
  // llama-bench reads 0 as "skip this kind of test"; alone it would silently run the other default,
  // so 0 is accepted only when another test kind was asked for explicitly.
  if (nPrompt.includes(0) && !explicitN && !explicitPg) {
    throw new UsageError("-p 0 runs no prompt test", "To benchmark only generation give -n too, e.g. -p 0 -n 128");
  }
  if (nGen.includes(0) && !explicitP && !explicitPg) {
    throw new UsageError("-n 0 runs no generation test", "To benchmark only prompt processing give -p too, e.g. -p 512 -n 0");
  }
  const nPg = (flags.pg ?? []).map(parsePromptGen);
  const repetitions = flags.repetitions === undefined ? LLAMA_BENCH_DEFAULTS.repetitions : parseIntRange(flags.repetitions, "-r");
  if (Array.isArray(repetitions) && (repetitions.length !== 1 || repetitions[0]! < 1)) {
    throw new UsageError(`-r "${flags.repetitions}" must be one whole number of at least 1`, "Example: -r 5");
  }
  const params: BenchParams = {
    models,
    nPrompt: nPrompt.filter((n) => n > 0),
    nGen: nGen.filter((n) => n > 0),
    nPg: nPg.filter(([p, g]) => p > 0 || g > 0),
    nDepth: ints(flags.nDepth, "-d", [LLAMA_BENCH_DEFAULTS.nDepth], { min: 0 }),
    nBatch: ints(flags.batchSize, "-b", [LLAMA_BENCH_DEFAULTS.nBatch], { min: 1 }),
    nUbatch: ints(flags.ubatchSize, "-ub", [LLAMA_BENCH_DEFAULTS.nUbatch], { min: 1 }),
    typeK: flags.cacheTypeK?.length ? flags.cacheTypeK.flatMap((v) => parseCacheTypes(v, "-ctk")) : [LLAMA_BENCH_DEFAULTS.typeK],
    typeV: flags.cacheTypeV?.length ? flags.cacheTypeV.flatMap((v) => parseCacheTypes(v, "-ctv")) : [LLAMA_BENCH_DEFAULTS.typeV],
    nThreads: ints(flags.threads, "-t", [defaults.threads], { min: 1 }),
    nGpuLayers: ints(flags.nGpuLayers, "-ngl", [LLAMA_BENCH_DEFAULTS.nGpuLayers], { min: -1, allowNegative: true }),
    flashAttn: flags.flashAttn?.length ? flags.flashAttn.flatMap(parseFlashAttn) : [LLAMA_BENCH_DEFAULTS.flashAttn],
    repetitions: Array.isArray(repetitions) ? repetitions[0]! : repetitions,
    warmup: flags.warmup !== false,
  };
  if (params.nPrompt.length + params.nGen.length + params.nPg.length === 0) {
    throw new UsageError("no tests to run: every -p, -n and -pg value is 0");
  }
  return params;
}

/**
 * The cartesian product, in llama-bench's order (get_cmd_params_instances): model outermost, then
 * ngl, n_batch, n_ubatch, type_k, type_v, fa, threads, depth; innermost the pp tests, then tg, then pg.
 * This order keeps one model loaded for as long as possible.
 */
export function expandInstances(params: BenchParams): BenchInstance[] {
  const instances: BenchInstance[] = [];
  for (const model of params.models)
    for (const nGpuLayers of params.nGpuLayers)
      for (const nBatch of params.nBatch)
        for (const nUbatch of params.nUbatch)
          for (const typeK of params.typeK)
            for (const typeV of params.typeV)
              for (const flashAttn of params.flashAttn)
                for (const nThreads of params.nThreads)
                  for (const nDepth of params.nDepth) {
                    const base = { model, nDepth, nBatch, nUbatch, typeK, typeV, nThreads, nGpuLayers, flashAttn };
                    for (const nPrompt of params.nPrompt) instances.push({ ...base, nPrompt, nGen: 0 });
                    for (const nGen of params.nGen) instances.push({ ...base, nPrompt: 0, nGen });
                    for (const [nPrompt, nGen] of params.nPg) instances.push({ ...base, nPrompt, nGen });
                  }
  return instances;
}

/** llama-bench's test name: pp512, tg128, pp512+tg128, with " @ d4096" at depth. */
export function testName(t: { nPrompt: number; nGen: number; nDepth: number }): string {
  let name = t.nPrompt > 0 && t.nGen === 0 ? `pp${t.nPrompt}` : t.nGen > 0 && t.nPrompt === 0 ? `tg${t.nGen}` : `pp${t.nPrompt}+tg${t.nGen}`;
  if (t.nDepth > 0) name += ` @ d${t.nDepth}`;
  return name;
}

/** Which optional columns the markdown table shows: swept or non-default, as llama-bench decides. */
export function sweptColumns(params: BenchParams, defaults: BenchDefaults, cpuBackend: boolean): string[] {
  const differs = <T>(values: T[], def: T) => values.length > 1 || values[0] !== def;
  const columns: string[] = [];
  if (!cpuBackend) columns.push("n_gpu_layers");
  if (differs(params.nThreads, defaults.threads) || cpuBackend) columns.push("n_threads");
  if (differs(params.nBatch, LLAMA_BENCH_DEFAULTS.nBatch)) columns.push("n_batch");
  if (differs(params.nUbatch, LLAMA_BENCH_DEFAULTS.nUbatch)) columns.push("n_ubatch");
  if (differs(params.typeK, LLAMA_BENCH_DEFAULTS.typeK)) columns.push("type_k");
  if (differs(params.typeV, LLAMA_BENCH_DEFAULTS.typeV)) columns.push("type_v");
  if (differs<number>(params.flashAttn, LLAMA_BENCH_DEFAULTS.flashAttn)) columns.push("flash_attn");
  return columns;
}
