import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { parseReference } from "../models/ref.js";
import { ServerClient, ServerUnreachableError, ModelNotServedError } from "./http.js";
import { apiKeyFrom, chooseServer, type ServerTarget, type TargetFlags } from "./target.js";
import type { TagEntry } from "./wire.js";

/**
 * Whether a model command (run, chat, batch) goes to a running server, and under which name.
 *
 * A server serves names (store names, pulled catalogue entries, `tiny`, the files it was started
 * with); it never opens a path, URL or hf: reference a request names, nor downloads. So:
 * - `tiny` and catalogue/store names go to the server as typed;
 * - a local .gguf path goes to the server only when the server serves that very file (its /api/tags
 *   entry names the path), under the server's name for it; a .gguf name that is no file here goes
 *   there when it is the server's name for one of its files (as `lmrun ps` shows it);
 * - anything else (another path, a URL, hf:) runs in-process exactly as without a server.
 * Load flags (-c, -t, --gpu ...) describe how to load a model, which a running server has already
 * decided: with them, a server found by itself is passed over, and --server is a usage error.
 */
export interface Route {
  client: ServerClient;
  model: string;
  target: ServerTarget;
}

/** The load flags a command was given explicitly (commander leaves absent ones undefined). */
export const LOAD_FLAG_NAMES: Record<string, string> = {
  ctx: "--ctx",
  threads: "--threads",
  threadsBatch: "--threads-batch",
  gpu: "--gpu",
  gpuLayers: "--gpu-layers",
  batchSize: "--batch-size",
  maxRam: "--max-ram",
};

export function givenLoadFlags(flags: object): string[] {
  return Object.keys(LOAD_FLAG_NAMES)
    .filter((key) => (flags as Record<string, unknown>)[key] !== undefined)
    .map((key) => LOAD_FLAG_NAMES[key]!);
}

export async function routeModel(
  flags: TargetFlags & object,
  modelRef: string,
  env: NodeJS.ProcessEnv,
  options: { signal?: AbortSignal | undefined; diag?: ((message: string) => void) | undefined } = {},
): Promise<Route | undefined> {
  const target = chooseServer(flags, env);
  if (target === undefined) return undefined;
  const loadFlags = givenLoadFlags(flags);
  if (loadFlags.length > 0) {
    if (target.source === "flag") {
      throw new UsageError(`${loadFlags.join(", ")} cannot change how a running server loads its models`, "Set them on `lmrun serve`, or run in-process with --local");
    }
    options.diag?.(`${loadFlags.join(", ")} given: running in-process rather than on the server at ${target.url}`);
    return undefined;
  }
  const client = new ServerClient(target.url, { apiKey: apiKeyFrom(env) });
  let model: string | undefined;
  try {
    model = await servedName(client, modelRef, options.signal);
  } catch (error) {
    client.close();
    if (error instanceof ServerUnreachableError && target.source !== "flag") {
      options.diag?.(`${error.message}: running in-process`);
      return undefined;
    }
    throw error;
  }
  if (model === undefined) {
    client.close();
    if (target.source === "flag") {
      throw new UsageError(`the server at ${target.url} does not serve ${modelRef}`, "A server serves the models it was started with and the store's; it never opens a path a request names. Start it with `lmrun serve FILE`, or drop --server");
    }
    options.diag?.(`the server at ${target.url} does not serve ${modelRef}: running in-process`);
    return undefined;
  }
  return { client, model, target };
}

/** May the failure of a routed request fall back to running in-process (nothing was generated yet)? */
export function mayFallBack(route: Route, error: unknown): boolean {
  return route.target.source !== "flag" && (error instanceof ServerUnreachableError || error instanceof ModelNotServedError);
}

/** The name the server knows the model by, or undefined when it is not one a server would serve. */
async function servedName(client: ServerClient, modelRef: string, signal?: AbortSignal): Promise<string | undefined> {
  let kind: string;
  try {
    kind = parseReference(modelRef).kind;
  } catch {
    return undefined; // in-process says what is wrong with it, as before
  }
  if (kind === "bundled" || kind === "catalogue") return modelRef.trim();
  if (kind !== "path") return undefined;
  let real: string | undefined;
  try {
    real = fs.realpathSync(path.resolve(modelRef));
  } catch {
    real = undefined; // no such file here: it may still be a name the server gives a file (`lmrun ps` shows x.gguf)
  }
  const tags = await client.json<{ models?: TagEntry[] }>("GET", "/api/tags", undefined, signal);
  const models = tags.models ?? [];
  const entry =
    real !== undefined
      ? models.find((m) => typeof m.lmrun?.path === "string" && samePath(m.lmrun.path, real))
      : models.find((m) => m.name === modelRef.trim());
  return entry?.name;
}

function samePath(served: string, real: string): boolean {
  try {
    return fs.realpathSync(served) === real;
  } catch {
    return served === real;
  }
}
