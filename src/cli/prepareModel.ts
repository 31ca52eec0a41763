import path from "node:path";
import type { LoadedModel } from "../engine/model.js";
import type { LoadOptions } from "../engine/types.js";
import { startSpinner } from "../io/progress.js";
import { resolveModel, type ResolvedModel } from "../models/resolve.js";
import type { CommandContext } from "./context.js";

export interface PreparedModel {
  resolved: ResolvedModel;
  loaded: LoadedModel;
  loadMs: number;
}

/** The shared front half of every model command: resolve the reference, then load it under a spinner. */
export async function resolveAndLoad(
  ctx: CommandContext,
  ref: string,
  loadOptionsFor: (resolved: ResolvedModel) => LoadOptions,
  options: { quietProgress?: boolean } = {},
): Promise<PreparedModel> {
  const resolved = await resolveModel(ref);
  const loadOptions = { ...loadOptionsFor(resolved), signal: ctx.signal };
  const spinner = await startSpinner(`loading ${resolved.displayName}`, {
    stderr: ctx.stderr,
    env: ctx.env,
    quiet: ctx.quiet || options.quietProgress === true,
  });
  const { loadModel } = await import("../engine/model.js");
  const startedAt = performance.now();
  try {
    const loaded = await loadModel(resolved.path, loadOptions);
    spinner.stop();
    return { resolved, loaded, loadMs: performance.now() - startedAt };
  } catch (error) {
    spinner.stop();
    throw error;
  }
}

export function modelFileName(resolved: ResolvedModel): string {
  return path.basename(resolved.path);
}
