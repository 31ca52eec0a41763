import { lmrunPaths } from "./paths.js";

/**
 * User settings, stored as JSON under LMRUN_HOME (written atomically by `conf`).
 * Precedence everywhere: flag > LMRUN_* environment > this file > built-in default.
 */
export interface Settings {
  modelsDir?: string;
  defaultModel?: string;
  threads?: number;
  gpu?: string;
  ctx?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  maxTokens?: number;
  /** Per-model tuned load settings written by `lmrun bench --tune`, keyed by model file name. */
  tuned?: Record<string, { threads?: number; batchThreads?: number; batchSize?: number; ubatchSize?: number; measuredAt?: string }>;
}

export const SETTING_KEYS = [
  "modelsDir",
  "defaultModel",
  "threads",
  "gpu",
  "ctx",
  "temperature",
  "topK",
  "topP",
  "minP",
  "repeatPenalty",
  "maxTokens",
] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];

const NUMERIC_KEYS = new Set<SettingKey>(["threads", "ctx", "temperature", "topK", "topP", "minP", "repeatPenalty", "maxTokens"]);

export function isNumericSetting(key: SettingKey): boolean {
  return NUMERIC_KEYS.has(key);
}

export interface SettingsStore {
  readonly path: string;
  all(): Settings;
  get<K extends keyof Settings>(key: K): Settings[K];
  set<K extends keyof Settings>(key: K, value: Settings[K]): void;
  delete(key: keyof Settings): void;
}

/** Opens the settings file; conf is imported lazily so that --help stays fast. */
export async function openSettings(env: NodeJS.ProcessEnv = process.env): Promise<SettingsStore> {
  const { default: Conf } = await import("conf");
  const paths = lmrunPaths(env);
  let conf: InstanceType<typeof Conf<Settings>>;
  try {
    conf = new Conf<Settings>({ projectName: "lmrun", cwd: paths.config, configName: "config", clearInvalidConfig: false });
  } catch (error) {
    const { LmrunError } = await import("../errors.js");
    throw new LmrunError(`cannot read the settings file in ${paths.config}: ${(error as Error).message}`, {
      hint: "Fix or delete config.json there",
    });
  }
  return {
    path: conf.path,
    all: () => ({ ...conf.store }),
    get: (key) => conf.get(key),
    set: (key, value) => conf.set(key, value as never),
    delete: (key) => conf.delete(key),
  };
}

/**
 * The settings, read-only: the JSON file conf writes, parsed directly. Every model command reads
 * settings at start-up and importing conf costs ~80 ms; only writes (`lmrun config set`, `--tune`)
 * go through conf.
 */
export async function readSettings(env: NodeJS.ProcessEnv = process.env): Promise<Settings> {
  const { readFile } = await import("node:fs/promises");
  const path = await import("node:path");
  const file = path.join(lmrunPaths(env).config, "config.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw await settingsError(file, error);
  }
  if (text.trim() === "") return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("it does not hold a JSON object");
    return parsed as Settings;
  } catch (error) {
    throw await settingsError(file, error);
  }
}

async function settingsError(file: string, error: unknown) {
  const { LmrunError } = await import("../errors.js");
  return new LmrunError(`cannot read the settings file ${file}: ${(error as Error).message}`, { hint: "Fix or delete it" });
}

/** Reads a numeric LMRUN_* variable; undefined when unset. */
export function envNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}
