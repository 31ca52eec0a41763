import type { CommandContext } from "../context.js";
import { formatError, UsageError } from "../../errors.js";
import { isNumericSetting, openSettings, readSettings, setAsideBrokenSettings, settingsPath, SETTING_KEYS, type SettingKey, type Settings } from "../../config/config.js";
import { DEFAULT_MAX_TOKENS, DEFAULT_SAMPLING } from "../../config/defaults.js";
import { SETTING_RULES } from "../../config/rules.js";
import { lmrunPaths } from "../../config/paths.js";

/** What a key falls back to when unset (shown by list, not stored). */
function defaultOf(key: SettingKey, env: NodeJS.ProcessEnv): string | number | null {
  switch (key) {
    case "modelsDir":
      return lmrunPaths(env).models;
    case "temperature":
      return DEFAULT_SAMPLING.temperature;
    case "topK":
      return DEFAULT_SAMPLING.topK;
    case "topP":
      return DEFAULT_SAMPLING.topP;
    case "minP":
      return DEFAULT_SAMPLING.minP;
    case "repeatPenalty":
      return DEFAULT_SAMPLING.repeatPenalty;
    case "maxTokens":
      return DEFAULT_MAX_TOKENS;
    default:
      return null;
  }
}

/** `tuned` is written by `bench --tune` (per model file), not by `config set`; list, get and unset know it. */
const TUNED = "tuned";
type ConfigKey = SettingKey | typeof TUNED;

function checkKey(key: string): ConfigKey {
  if (key.toLowerCase() === TUNED) return TUNED;
  const found = SETTING_KEYS.find((k) => k.toLowerCase() === key.toLowerCase());
  if (found === undefined) throw new UsageError(`unknown setting "${key}"`, `Settings are: ${[...SETTING_KEYS, TUNED].join(", ")}`);
  return found;
}

/** `tuned` as one line: each model's saved threads and batch size. */
export function describeTuned(tuned: Settings["tuned"]): string | null {
  const entries = Object.entries(tuned ?? {});
  if (entries.length === 0) return null;
  return entries.map(([file, t]) => `${file}: ${[t.threads !== undefined ? `threads ${t.threads}` : "", t.batchThreads !== undefined ? `batch threads ${t.batchThreads}` : "", t.batchSize !== undefined ? `batch size ${t.batchSize}` : ""].filter(Boolean).join(", ")}`).join("; ");
}

/** The settings for list/get: a broken file is reported (file and problem) and read as empty, so that the listing still helps to repair it. */
async function readForDisplay(ctx: CommandContext): Promise<Settings> {
  try {
    return await readSettings(ctx.env, { validate: false });
  } catch (error) {
    ctx.out.warn(`${formatError(error)}; showing the defaults`);
    return {};
  }
}

export async function configList(ctx: CommandContext, json: boolean): Promise<void> {
  const values = await readForDisplay(ctx);
  const rows = SETTING_KEYS.map((key) => ({ key, value: values[key] ?? null, default: defaultOf(key, ctx.env), numeric: isNumericSetting(key) }));
  const tuned = describeTuned(values.tuned);
  if (json) {
    return ctx.out.json({ ...Object.fromEntries(rows.map((r) => [r.key, { value: r.value, default: r.default }])), [TUNED]: { value: values.tuned ?? null, default: null } });
  }
  const lines = rows.map((r) => `${r.key.padEnd(14)} ${r.value !== null ? String(r.value) : r.default !== null ? `(default: ${r.default})` : "(not set)"}`);
  lines.push(`${TUNED.padEnd(14)} ${tuned ?? "(not set: lmrun bench MODEL --tune saves one per model)"}`);
  ctx.out.text(lines.join("\n") + "\n");
}

export async function configGet(ctx: CommandContext, rawKey: string, json: boolean): Promise<void> {
  const key = checkKey(rawKey);
  const settings = await readForDisplay(ctx);
  if (key === TUNED) {
    if (json) return ctx.out.json({ key, value: settings.tuned ?? null, default: null });
    ctx.out.text(`${describeTuned(settings.tuned) ?? ""}\n`);
    return;
  }
  const value = settings[key as keyof Settings] as string | number | undefined;
  if (json) return ctx.out.json({ key, value: value ?? null, default: defaultOf(key, ctx.env) });
  const shown = value ?? defaultOf(key, ctx.env);
  ctx.out.text(shown !== null ? `${shown}\n` : "\n");
}

export async function configSet(ctx: CommandContext, rawKey: string, raw: string): Promise<void> {
  const key = checkKey(rawKey);
  if (key === TUNED) throw new UsageError("tuned is saved by `lmrun bench MODEL --tune`", "Remove it with `lmrun config unset tuned` (or `tuned.FILE` for one model)");
  let value: string | number;
  try {
    value = SETTING_RULES[key](raw);
  } catch (error) {
    throw new UsageError(`invalid value for ${key}: ${(error as Error).message}`);
  }
  const repaired = await setAsideBrokenSettings(ctx.env);
  if (repaired !== undefined) ctx.out.warn(repaired);
  (await openSettings(ctx.env)).set(key as keyof Settings, value as never);
  ctx.out.info(`${key} = ${value}`);
}

/** `unset KEY`; `unset tuned` drops every model's tuned setting, `unset tuned.FILE` one model's. */
export async function configUnset(ctx: CommandContext, rawKey: string): Promise<void> {
  const oneModel = rawKey.toLowerCase().startsWith(`${TUNED}.`) ? rawKey.slice(TUNED.length + 1) : undefined;
  const key = oneModel !== undefined ? TUNED : checkKey(rawKey);
  const repaired = await setAsideBrokenSettings(ctx.env);
  if (repaired !== undefined) ctx.out.warn(repaired);
  const settings = await openSettings(ctx.env);
  if (oneModel === undefined) return settings.delete(key as keyof Settings);
  const tuned = { ...(settings.get("tuned") ?? {}) };
  if (!(oneModel in tuned)) {
    throw new UsageError(`no tuned setting for ${oneModel}`, Object.keys(tuned).length > 0 ? `Tuned models: ${Object.keys(tuned).join(", ")}` : "No model has one");
  }
  delete tuned[oneModel];
  if (Object.keys(tuned).length === 0) settings.delete("tuned");
  else settings.set("tuned", tuned);
}

export async function configPath(ctx: CommandContext): Promise<void> {
  // Not through conf: it refuses to open a broken file, and the path is what is needed to fix one.
  ctx.out.text(`${await settingsPath(ctx.env)}\n`);
}
