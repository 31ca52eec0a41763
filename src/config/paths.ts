import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where lmrun keeps its state (models, sessions, config, history).
 * LMRUN_HOME wins; otherwise the platform's conventions (XDG on Linux).
 */
export function lmrunHome(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.LMRUN_HOME) return path.resolve(env.LMRUN_HOME);
  const home = env.HOME ?? os.homedir();
  if (platform === "darwin") return path.join(home, "Library", "Application Support", "lmrun");
  if (platform === "win32") return path.join(env.LOCALAPPDATA ?? path.join(home, "AppData", "Local"), "lmrun");
  return path.join(env.XDG_DATA_HOME || path.join(home, ".local", "share"), "lmrun");
}

export interface LmrunPaths {
  home: string;
  models: string;
  sessions: string;
  config: string;
  history: string;
}

export function lmrunPaths(env: NodeJS.ProcessEnv = process.env): LmrunPaths {
  const home = lmrunHome(env);
  return {
    home,
    models: env.LMRUN_MODELS ? path.resolve(env.LMRUN_MODELS) : path.join(home, "models"),
    sessions: path.join(home, "sessions"),
    config: home,
    history: path.join(home, "history"),
  };
}

/** The package root (where package.json, models.json and assets/ live). */
export function packageRoot(): string {
  // This file compiles to dist/config/paths.js.
  // fileURLToPath, not URL.pathname: a checkout under "My Projects" would otherwise read "My%20Projects".
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
}
