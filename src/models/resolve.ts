import fs from "node:fs";
import path from "node:path";
import { LmrunError, UsageError } from "../errors.js";
import type { Settings } from "../config/config.js";
import { lmrunPaths, packageRoot } from "../config/paths.js";
import { catalogueQuant, findCatalogueEntry, loadCatalogue, suggestNames } from "./catalogue.js";
import { huggingFaceFileUrl, listRepoFiles } from "./hf.js";
import { pullFile, type PullEvent, type PullFileResult, type PullTarget } from "./pull.js";
import { formatReference, parseReference, pickQuantFile, quantOfFileName, ReferenceError, splitPartNames, type ModelReference } from "./ref.js";
import { ModelStore, storePathForHuggingFace, storePathForUrl, type ManifestEntry } from "./store.js";

/** Kept for callers of the first version: what a reference is, before anything is fetched. */
export type ModelRef = { kind: "bundled"; name: string; path: string } | { kind: "path"; path: string };

export const BUNDLED_MODELS: Record<string, string> = {
  tiny: "assets/models/stories260K-Q8_0.gguf",
};

export interface ResolvedModel {
  path: string;
  /** How to name the model in output. */
  displayName: string;
  source?: "bundled" | "path" | "store";
  /** True when this call downloaded something. */
  pulled?: boolean;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Download what is missing (default true); false refuses with a hint to pull. */
  pull?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: PullEvent) => void;
  /** Settings (for modelsDir); read from the settings file when absent. */
  settings?: Settings;
}

/** A remote model as files to fetch: one, or every part of a split GGUF (the first is the entrypoint). */
export interface RemotePlan {
  ref: string;
  displayName: string;
  targets: PullTarget[];
}

export type Resolution = { kind: "local"; resolved: ResolvedModel } | { kind: "remote"; plan: RemotePlan };

/** The models directory: LMRUN_MODELS, then the modelsDir setting, then LMRUN_HOME/models. */
export function modelsDirectory(env: NodeJS.ProcessEnv, settings?: Settings): string {
  if (env.LMRUN_MODELS) return lmrunPaths(env).models;
  if (settings?.modelsDir) return path.resolve(settings.modelsDir);
  return lmrunPaths(env).models;
}

export async function openStore(env: NodeJS.ProcessEnv, settings?: Settings): Promise<ModelStore> {
  if (settings === undefined && !env.LMRUN_MODELS) {
    const { readSettings } = await import("../config/config.js");
    settings = await readSettings(env);
  }
  return new ModelStore(modelsDirectory(env, settings));
}

/** Parses a reference, mapping a bad one to a usage error with the forms that are accepted. */
export function parseOrExplain(ref: string): ModelReference {
  try {
    return parseReference(ref);
  } catch (error) {
    if (error instanceof ReferenceError) {
      throw new UsageError(error.message, "Give a catalogue name (qwen2.5:0.5b), hf:USER/REPO:QUANT, hf:USER/REPO/FILE.gguf, an https URL, a .gguf path, or `tiny`");
    }
    throw error;
  }
}

/**
 * Works out where a reference's file is or would be, without downloading. Only `hf:USER/REPO:QUANT`
 * that is not in the store yet asks the network (the Hugging Face API, to find the quant's file).
 */
export async function planReference(
  ref: string,
  store: ModelStore,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
  options: { pull?: boolean } = {},
): Promise<Resolution> {
  const trimmed = ref.trim();
  const parsed = parseOrExplain(trimmed);
  if (parsed.kind === "bundled") {
    return { kind: "local", resolved: { path: path.join(packageRoot(), BUNDLED_MODELS[parsed.name]!), displayName: parsed.name, source: "bundled" } };
  }
  // An existing file wins over every other reading of the text.
  const onDisk = isFile(expandHome(trimmed, env));
  if (onDisk || parsed.kind === "path") {
    const file = path.resolve(expandHome(trimmed, env));
    if (onDisk) return { kind: "local", resolved: { path: file, displayName: path.basename(file), source: "path" } };
    // Not here: a name that `lmrun ls` shows (a file copied into the store, a rebuilt manifest's
    // file name, a URL pull's short name) answers for its file, as it does for rm and verify.
    const stored = await findStoredModel(store, trimmed);
    if (stored !== undefined) return { kind: "local", resolved: stored };
    // Neither: loading says the file is missing, in one line.
    return { kind: "local", resolved: { path: file, displayName: path.basename(file), source: "path" } };
  }
  const canonical = formatReference(parsed);
  switch (parsed.kind) {
    case "catalogue":
      return planCatalogue(parsed, canonical, env);
    case "hf-file": {
      const files = splitPartNames(parsed.file);
      return remote(canonical, canonical, files.map((file) => ({
        ref: canonical,
        url: huggingFaceFileUrl(env, parsed.user, parsed.repo, file, parsed.branch),
        file: storePathForHuggingFace(parsed.user, parsed.repo, file, parsed.branch),
        ...(quantOfFileName(file) ? { quant: quantOfFileName(file)! } : {}),
        repo: { user: parsed.user, repo: parsed.repo, branch: parsed.branch },
      })));
    }
    case "hf-quant":
      return planHuggingFaceQuant(parsed, canonical, store, env, signal, options.pull !== false);
    case "url": {
      const files = splitPartNames(parsed.url.split("?")[0]!);
      return remote(canonical, canonical, files.map((url) => ({ ref: canonical, url, file: storePathForUrl(url), ...(quantOfFileName(url) ? { quant: quantOfFileName(url)! } : {}) })));
    }
  }
}

function remote(ref: string, displayName: string, targets: PullTarget[]): Resolution {
  return { kind: "remote", plan: { ref, displayName, targets } };
}

export function planCatalogue(parsed: Extract<ModelReference, { kind: "catalogue" }>, canonical: string, env: NodeJS.ProcessEnv): Resolution {
  const catalogue = loadCatalogue();
  const entry = findCatalogueEntry(catalogue, parsed.name, parsed.tag);
  if (entry === undefined) {
    const suggestions = suggestNames(catalogue, canonical);
    throw new LmrunError(`unknown model "${canonical}"`, {
      exitCode: 2,
      hint: suggestions.length > 0 ? `Did you mean ${suggestions.join(", ")}? (lmrun pull --list shows the catalogue)` : "lmrun pull --list shows the catalogue; hf:USER/REPO:QUANT, a URL or a .gguf path work too",
    });
  }
  const displayBase = entry.tag !== undefined ? `${entry.name}:${entry.tag}` : entry.name;
  const chosen = catalogueQuant(entry, parsed.quant);
  if (chosen === undefined) {
    throw new LmrunError(`${displayBase} has no quant ${parsed.quant}`, { exitCode: 2, hint: `It offers: ${Object.keys(entry.quants).join(", ")}` });
  }
  const displayName = chosen.quant === entry.defaultQuant ? displayBase : `${displayBase}@${chosen.quant}`;
  if (entry.bundled !== undefined) {
    return { kind: "local", resolved: { path: path.join(packageRoot(), entry.bundled), displayName, source: "bundled" } };
  }
  const [user = "", repo = ""] = entry.repo!.split("/");
  const files = splitPartNames(chosen.info.file);
  return remote(displayName, displayName, files.map((file, index) => ({
    ref: displayName,
    url: huggingFaceFileUrl(env, user, repo, file, entry.revision ?? "main"),
    file: storePathForHuggingFace(user, repo, file),
    quant: chosen.quant,
    repo: { user, repo },
    // The catalogue's hash and size describe the file it names (the first part of a split model).
    ...(index === 0 && chosen.info.sha256 ? { expectedSha256: chosen.info.sha256, expectedSha256Source: "catalogue" as const } : {}),
    ...(index === 0 && chosen.info.sizeBytes ? { expectedSize: chosen.info.sizeBytes } : {}),
  })));
}

async function planHuggingFaceQuant(
  parsed: Extract<ModelReference, { kind: "hf-quant" }>,
  canonical: string,
  store: ModelStore,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal | undefined,
  mayAsk: boolean,
): Promise<Resolution> {
  // Pulled before: answer from the manifest, offline.
  const { manifest } = await store.load();
  const known = manifest.files.find((entry) => entry.refs.includes(canonical));
  if (known !== undefined && fs.existsSync(store.absolute(known.file))) {
    return { kind: "local", resolved: { path: store.absolute(known.file), displayName: canonical, source: "store" } };
  }
  // --no-pull: finding the quant's file would ask the Hub, which is already going to the network.
  if (!mayAsk) throw notDownloaded(canonical);
  const files = await listRepoFiles(env, parsed.user, parsed.repo, signal ? { signal } : {});
  const ggufs = files.filter((f) => f.path.toLowerCase().endsWith(".gguf"));
  const quant = parsed.quant ?? "Q4_K_M";
  let chosen = pickQuantFile(ggufs.map((f) => f.path), quant);
  if (chosen === undefined && parsed.quant === undefined && ggufs.length === 1) chosen = ggufs[0]!.path;
  if (chosen === undefined) {
    const offered = [...new Set(ggufs.map((f) => quantOfFileName(f.path) ?? f.path))];
    throw new LmrunError(`${parsed.user}/${parsed.repo} has no ${quant} GGUF file`, {
      exitCode: 2,
      hint: offered.length > 0 ? `It offers: ${offered.join(", ")}` : "It has no .gguf files",
    });
  }
  const byPath = new Map(ggufs.map((f) => [f.path, f]));
  return remote(canonical, canonical, splitPartNames(chosen).map((file) => {
    const info = byPath.get(file);
    return {
      ref: canonical,
      url: huggingFaceFileUrl(env, parsed.user, parsed.repo, file),
      file: storePathForHuggingFace(parsed.user, parsed.repo, file),
      quant: quantOfFileName(file) ?? quant,
      repo: { user: parsed.user, repo: parsed.repo },
      ...(info?.sha256 ? { expectedSha256: info.sha256, expectedSha256Source: "api" as const } : {}),
      ...(info?.size ? { expectedSize: info.size } : {}),
    };
  }));
}

/** Downloads every missing file of a plan (parts one after another), returning each file's outcome. */
export async function pullPlan(store: ModelStore, plan: RemotePlan, options: ResolveOptions & { env: NodeJS.ProcessEnv }): Promise<PullFileResult[]> {
  const results: PullFileResult[] = [];
  for (const target of plan.targets) {
    results.push(
      await pullFile(store, target, {
        env: options.env,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      }),
    );
  }
  return results;
}

/**
 * Turns any reference into a local file path, pulling what is missing (unless `pull: false`).
 * run, chat, bench and perplexity call this through cli/prepareModel.ts.
 */
export async function resolveModel(ref: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  const parsed = parseOrExplain(ref);
  if (parsed.kind === "bundled" || isFile(expandHome(ref.trim(), env))) {
    // Nothing to look up: no settings to read, no store to open.
    const resolution = await planReference(ref, new ModelStore(lmrunPaths(env).models), env);
    if (resolution.kind === "local") return resolution.resolved;
  }
  const store = await openStore(env, options.settings);
  const resolution = await planReference(ref, store, env, options.signal, { pull: options.pull !== false });
  if (resolution.kind === "local") return resolution.resolved;
  const { plan } = resolution;
  const entrypoint = store.absolute(plan.targets[0]!.file);
  const missing = plan.targets.filter((t) => !fs.existsSync(store.absolute(t.file)));
  if (missing.length === 0) {
    await store.addRef(plan.targets[0]!.file, plan.ref).catch(() => {});
    return { path: entrypoint, displayName: plan.displayName, source: "store" };
  }
  if (options.pull === false) throw notDownloaded(plan.displayName, plan.ref);
  await pullPlan(store, plan, { ...options, env });
  return { path: entrypoint, displayName: plan.displayName, source: "store", pulled: true };
}

function notDownloaded(name: string, ref = name): LmrunError {
  return new LmrunError(`${name} is not downloaded (--no-pull)`, { hint: `Run \`lmrun pull ${ref}\` first, or drop --no-pull` });
}

/**
 * Store entries a name answers to: a reference recorded for the file, its store path, its file name
 * (what `lmrun ls` shows for a file found on disk) or its absolute path. The one matcher behind
 * run/show/chat/bench/perplexity (through planReference) and rm/verify.
 */
export function matchStoreEntries(store: ModelStore, entries: readonly ManifestEntry[], ref: string): ManifestEntry[] {
  const trimmed = ref.trim();
  const wanted = new Set([trimmed]);
  try {
    wanted.add(formatReference(parseReference(trimmed)));
  } catch {
    // not a reference form: still matched by file name below
  }
  const absolute = path.resolve(trimmed);
  return entries.filter((e) => e.refs.some((r) => wanted.has(r)) || e.file === trimmed || path.posix.basename(e.file) === trimmed || store.absolute(e.file) === absolute);
}

/** The store's file for a name that is not a file here; undefined when the store has none. Two files of that name: say which to give. */
async function findStoredModel(store: ModelStore, ref: string): Promise<ResolvedModel | undefined> {
  if (!fs.existsSync(store.dir)) return undefined;
  const { manifest } = await store.load();
  const matches = matchStoreEntries(store, manifest.files, ref).filter((e) => isFile(store.absolute(e.file)));
  if (matches.length === 0) return undefined;
  if (matches.length > 1) {
    throw new LmrunError(`"${ref}" names ${matches.length} models in the store`, { exitCode: 2, hint: `Give one of: ${matches.map((e) => e.refs[0] ?? e.file).join(", ")}` });
  }
  const entry = matches[0]!;
  return { path: store.absolute(entry.file), displayName: ref.trim(), source: "store" };
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Kept for the first version's callers: bundled names and paths only. */
export function parseModelRef(ref: string): ModelRef {
  const parsed = parseOrExplain(ref);
  if (parsed.kind === "bundled") return { kind: "bundled", name: parsed.name, path: path.join(packageRoot(), BUNDLED_MODELS[parsed.name]!) };
  if (parsed.kind === "path") return { kind: "path", path: path.resolve(parsed.path) };
  throw new UsageError(`"${ref}" is not a local model`, "Use resolveModel for catalogue names, hf: references and URLs");
}

function expandHome(file: string, env: NodeJS.ProcessEnv): string {
  return file.startsWith("~/") ? path.join(env.HOME ?? "", file.slice(2)) : file;
}
