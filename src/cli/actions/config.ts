import path from "node:path";
import type { CommandContext } from "../context.js";
import { UsageError } from "../../errors.js";
import { isNumericSetting, openSettings, readSettings, SETTING_KEYS, type SettingKey, type Settings } from "../../config/config.js";
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

function checkKey(key: string): SettingKey {
  const found = SETTING_KEYS.find((k) => k.toLowerCase() === key.toLowerCase());
  if (found === undefined) throw new UsageError(`unknown setting "${key}"`, `Settings are: ${SETTING_KEYS.join(", ")}`);
  return found;
}

export async function configList(ctx: CommandContext, json: boolean): Promise<void> {
  const values = await readSettings(ctx.env, { validate: false });
  const rows = SETTING_KEYS.map((key) => ({ key, value: values[key] ?? null, default: defaultOf(key, ctx.env), numeric: isNumericSetting(key) }));
  if (json) return ctx.out.json(Object.fromEntries(rows.map((r) => [r.key, { value: r.value, default: r.default }])));
  ctx.out.text(rows.map((r) => `${r.key.padEnd(14)} ${r.value !== null ? String(r.value) : r.default !== null ? `(default: ${r.default})` : "(not set)"}`).join("\n") + "\n");
}

export async function configGet(ctx: CommandContext, rawKey: string, json: boolean): Promise<void> {
  const key = checkKey(rawKey);
  const value = (await readSettings(ctx.env, { validate: false }))[key as keyof Settings] as string | number | undefined;
  if (json) return ctx.out.json({ key, value: value ?? null, default: defaultOf(key, ctx.env) });
  const shown = value ?? defaultOf(key, ctx.env);
  ctx.out.text(shown !== null ? `${shown}\n` : "\n");
}

export async function configSet(ctx: CommandContext, rawKey: string, raw: string): Promise<void> {
  const key = checkKey(rawKey);
  let value: string | number;
  try {
    value = SETTING_RULES[key](raw);
  } catch (error) {
    throw new UsageError(`invalid value for ${key}: ${(error as Error).message}`);
  }
  (await openSettings(ctx.env)).set(key as keyof Settings, value as never);
  ctx.out.info(`${key} = ${value}`);
}

export async function configUnset(ctx: CommandContext, rawKey: string): Promise<void> {
  const key = checkKey(rawKey);
  (await openSettings(ctx.env)).delete(key as keyof Settings);
}

export async function configPath(ctx: CommandContext): Promise<void> {
  ctx.out.text(`${(await openSettings(ctx.env)).path}\n`);
}
