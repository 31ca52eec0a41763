import fs from "node:fs";
import path from "node:path";
import type { SettingKey } from "./config.js";

/**
 * What each setting may hold, wherever it comes from: `lmrun config set` (text), the settings file
 * (JSON, perhaps edited by hand) and LMRUN_* variables (text). A rule returns the value to use or
 * throws an Error whose message says what is wrong ("must be between 1 and 1024, got 0").
 * Command-line flags have their own parsers (cli/parse.ts) with the same ranges.
 */
export type SettingRule = (value: unknown) => string | number;

const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function numberRule(min: number, max: number, integer: boolean): SettingRule {
  return (value) => {
    const number = typeof value === "number" ? value : typeof value === "string" && DECIMAL.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isFinite(number)) throw new Error(`expected ${integer ? "a whole number" : "a number"}, got ${JSON.stringify(value)}`);
    if (integer && !Number.isInteger(number)) throw new Error(`expected a whole number, got ${number}`);
    if (number < min || number > max) throw new Error(`must be between ${min} and ${max}, got ${number}`);
    return number;
  };
}

/** The smallest -c lmrun accepts (flags, settings, LMRUN_CTX; perplexity's chunk size too). */
export const MIN_CONTEXT = 16;

export const GPU_CHOICES = ["auto", "cuda", "vulkan", "metal", "cpu"] as const;
export type GpuName = (typeof GPU_CHOICES)[number];

/** A backend name as users write it ("false" and "none" mean the CPU); undefined when it is none. */
export function normaliseGpu(raw: string): GpuName | undefined {
  const value = raw.toLowerCase();
  const choice = value === "false" || value === "none" ? "cpu" : value;
  return (GPU_CHOICES as readonly string[]).includes(choice) ? (choice as GpuName) : undefined;
}

/** Why this platform cannot have a backend (node-llama-cpp would silently pick another); undefined when it can. */
export function gpuPlatformProblem(choice: GpuName, platform: NodeJS.Platform = process.platform): string | undefined {
  if (choice === "metal" && platform !== "darwin") return "Metal exists only on macOS";
  if (choice === "cuda" && platform === "darwin") return "CUDA is not available on macOS";
  return undefined;
}

/** A backend this platform can have. */
export function gpuRule(platform: NodeJS.Platform = process.platform): SettingRule {
  return (value) => {
    const choice = typeof value === "string" ? normaliseGpu(value.trim()) : undefined;
    if (choice === undefined) throw new Error(`expected one of ${GPU_CHOICES.join(", ")}, got ${JSON.stringify(value)}`);
    const problem = gpuPlatformProblem(choice, platform);
    if (problem !== undefined) throw new Error(problem);
    return choice;
  };
}

function textRule(transform: (text: string) => string): SettingRule {
  return (value) => {
    if (typeof value !== "string" || value.trim() === "") throw new Error(`expected a non-empty text, got ${JSON.stringify(value)}`);
    return transform(value.trim());
  };
}

/** A directory, or a path where one can be made: a file there (`/etc/passwd`) would break every store command later. */
function directoryRule(): SettingRule {
  return textRule((text) => {
    const dir = path.resolve(text);
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(dir);
    } catch {
      stat = undefined; // made when the first model is pulled
    }
    if (stat !== undefined && !stat.isDirectory()) throw new Error(`${dir} is a file, not a directory`);
    return dir;
  });
}

export const SETTING_RULES: Record<SettingKey, SettingRule> = {
  modelsDir: directoryRule(),
  defaultModel: textRule((text) => text),
  threads: numberRule(1, 1024, true),
  gpu: gpuRule(),
  ctx: numberRule(MIN_CONTEXT, 10_000_000, true),
  temperature: numberRule(0, 100, false),
  topK: numberRule(0, 1_000_000, true),
  topP: numberRule(0, 1, false),
  minP: numberRule(0, 1, false),
  repeatPenalty: numberRule(0, 10, false),
  maxTokens: numberRule(1, 10_000_000, true),
};

/** The LMRUN_* variables that stand for a setting, with the rule their value follows. */
export const ENV_RULES = {
  LMRUN_GPU: SETTING_RULES.gpu,
  LMRUN_CTX: SETTING_RULES.ctx,
  LMRUN_THREADS: SETTING_RULES.threads,
  LMRUN_THREADS_BATCH: SETTING_RULES.threads,
} as const;
