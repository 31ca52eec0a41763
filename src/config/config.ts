import { UsageError } from "../errors.js";
import { lmrunPaths } from "./paths.js";
import { ENV_RULES, SETTING_RULES } from "./rules.js";

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
export async function readSettings(env: NodeJS.ProcessEnv = process.env, options: { validate?: boolean } = {}): Promise<Settings> {
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
  let settings: Settings;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("it does not hold a JSON object");
    settings = parsed as Settings;
  } catch (error) {
    throw await settingsError(file, error);
  }
  if (options.validate !== false) checkSettings(settings, file);
  return settings;
}

/** A hand-edited value that breaks a rule is an error naming the file, the key and the fix (never a crash later). */
function checkSettings(settings: Settings, file: string): void {
  for (const key of SETTING_KEYS) {
    const value = settings[key];
    if (value === undefined) continue;
    try {
      SETTING_RULES[key](value);
    } catch (error) {
      throw new UsageError(
        `the setting ${key} in ${file} is ${JSON.stringify(value)}: ${(error as Error).message}`,
        `Fix it with \`lmrun config set ${key} VALUE\` or remove it with \`lmrun config unset ${key}\``,
      );
    }
  }
}

async function settingsError(file: string, error: unknown) {
  const { LmrunError } = await import("../errors.js");
  return new LmrunError(`cannot read the settings file ${file}: ${(error as Error).message}`, {
    hint: "Fix it by hand, or run `lmrun config set KEY VALUE` or `lmrun config unset KEY`, which keep the broken file aside and start a new one",
  });
}

/** Where the settings file is (what conf writes), without opening it. */
export async function settingsPath(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = await import("node:path");
  return path.join(lmrunPaths(env).config, "config.json");
}

/**
 * A settings file that is not a JSON object (a bad hand edit) is renamed to FILE.broken-TIME so that
 * `lmrun config set/unset` can write a new one: lmrun must be able to repair its own file, and the
 * user's text is kept. Returns what was done, for a warning; undefined when the file was fine or absent.
 */
export async function setAsideBrokenSettings(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const { readFile, rename } = await import("node:fs/promises");
  const file = await settingsPath(env);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined; // absent (conf creates it) or unreadable (conf says so)
  }
  if (text.trim() === "") return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) return undefined;
    throw new Error("it does not hold a JSON object");
  } catch (error) {
    const aside = `${file}.broken-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    await rename(file, aside);
    return `the settings file ${file} was not valid (${(error as Error).message}): it was kept as ${aside} and a new one started`;
  }
}

/** An LMRUN_* variable that stands for a setting (rules.ts): its value, undefined when unset, a one-line error when invalid. */
export function envSetting<T extends string | number>(env: NodeJS.ProcessEnv, name: keyof typeof ENV_RULES): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  try {
    return ENV_RULES[name](raw) as T;
  } catch (error) {
    throw new UsageError(`${name}=${raw} is not valid: ${(error as Error).message}`, `Fix or unset ${name}`);
  }
}
