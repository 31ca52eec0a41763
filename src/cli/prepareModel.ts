import path from "node:path";
import type { LoadedModel } from "../engine/model.js";
import type { LoadOptions } from "../engine/types.js";
import { startSpinner } from "../io/progress.js";
import type { ResolvedModel } from "../models/resolve.js";
import type { CommandContext } from "./context.js";
import { pullAllowed } from "./modelOptions.js";

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
  options: { quietProgress?: boolean; pull?: boolean } = {},
): Promise<PreparedModel> {
  // Loaded here, not at the top: the resolver pulls in HTTP, TLS and hashing, which --help must not pay for.
  const [{ createPullReporter }, { resolveModel }] = await Promise.all([import("../io/pullProgress.js"), import("../models/resolve.js")]);
  // A model missing from the store is pulled first, with progress on stderr (a terminal only).
  const reporter = await createPullReporter(ref, {
    out: ctx.out,
    stderr: ctx.stderr,
    env: ctx.env,
    quiet: ctx.quiet || options.quietProgress === true,
    json: false,
    verbose: ctx.verbose,
  });
  let resolved: ResolvedModel;
  try {
    resolved = await resolveModel(ref, { env: ctx.env, pull: options.pull ?? pullAllowed(), signal: ctx.signal, onEvent: reporter.onEvent });
  } finally {
    reporter.stop();
  }
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

/** What to say when llama.cpp made the context bigger than -c asked (it pads small ones); undefined when it did not. */
export function contextRaisedNote(summary: { contextSize: number; requestedContextSize?: number | undefined }): string | undefined {
  if (summary.requestedContextSize === undefined) return undefined;
  return `-c ${summary.requestedContextSize} is below the smallest context llama.cpp makes here: the context holds ${summary.contextSize} tokens`;
}

export function modelFileName(resolved: ResolvedModel): string {
  return path.basename(resolved.path);
}
