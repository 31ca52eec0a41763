import fs from "node:fs";
import path from "node:path";
import { packageRoot } from "../config/paths.js";
import type { ServableModel } from "../engine/scheduler/modelPool.js";
import { BUNDLED_MODELS, planCatalogue } from "../models/resolve.js";
import { formatReference, parseReference } from "../models/ref.js";
import { parseManifest, type ManifestEntry } from "../models/store.js";

/**
 * Which model names a request may use, and the file each one means. A request's `model` is looked
 * up in an allowlist: the files named on the command line, `tiny`, the store's models (by the
 * references they were pulled as) and catalogue names whose files are already in the store.
 * Nothing else is ever opened: a path, `..`, an absolute name or a URL is simply not a name here,
 * and lmrun's resolver (which opens paths, fetches URLs and pulls) never sees a request's text.
 */

export interface ListedModel extends ServableModel {
  sizeBytes: number;
  modifiedAt: string;
  digest: string;
  quant: string | undefined;
}

export interface ModelNamesOptions {
  /** Models named on the command line, already resolved (by the operator, so paths are fine there). */
  commandLine: ServableModel[];
  modelsDir: string;
  env: NodeJS.ProcessEnv;
}

/** Text that is never a servable name, whatever the store holds. */
export function isUnsafeModelName(name: string): boolean {
  return (
    name.length === 0 ||
    name.length > 300 ||
    name.includes("..") ||
    name.includes("\\") ||
    name.includes("\0") ||
    name.includes("://") ||
    /^[/~.]/.test(name) ||
    /^[a-z]:[/\\]/i.test(name) ||
    /\.gguf$/i.test(name) && !name.startsWith("hf:")
  );
}

export class ModelNames {
  private readonly byName = new Map<string, ServableModel>();

  constructor(private readonly options: ModelNamesOptions) {
    for (const model of options.commandLine) {
      this.byName.set(model.name, model);
      this.byName.set(path.basename(model.path), model);
    }
  }

  /** The first model named on the command line: what a request that names none means (llama-server's /infill). */
  get first(): ServableModel | undefined {
    return this.options.commandLine[0];
  }

  /** The model a request's name means, or undefined (answer 404). */
  resolve(raw: string): ServableModel | undefined {
    const name = raw.trim();
    // ollama clients add ":latest" to a bare name.
    const bare = name.endsWith(":latest") ? name.slice(0, -":latest".length) : name;
    // The operator's own names first, exactly as listed (a file name like x.gguf is one).
    for (const candidate of [name, bare]) {
      const fromCommandLine = this.byName.get(candidate);
      if (fromCommandLine) return fromCommandLine;
    }
    if (isUnsafeModelName(name)) return undefined;
    let parsed;
    try {
      parsed = parseReference(bare);
    } catch {
      return undefined;
    }
    if (parsed.kind === "bundled") return { name: parsed.name, path: path.join(packageRoot(), BUNDLED_MODELS[parsed.name]!) };
    if (parsed.kind === "path" || parsed.kind === "url") return undefined;
    const canonical = formatReference(parsed);
    const stored = this.storeEntries().find((e) => e.refs.includes(canonical) || e.refs.includes(bare));
    if (stored) return { name: canonical, path: this.storeFile(stored) };
    if (parsed.kind !== "catalogue") return undefined;
    try {
      const resolution = planCatalogue(parsed, canonical, this.options.env);
      if (resolution.kind === "local") return { name: resolution.resolved.displayName, path: resolution.resolved.path };
      const files = resolution.plan.targets.map((t) => path.join(this.options.modelsDir, ...t.file.split("/")));
      if (files.every((f) => isFile(f))) return { name: resolution.plan.displayName, path: files[0]! };
    } catch {
      // Not a catalogue name.
    }
    return undefined;
  }

  /** Every name a request may use, for /v1/models and /api/tags. */
  list(): ListedModel[] {
    const seen = new Set<string>();
    const listed: ListedModel[] = [];
    const add = (model: ServableModel, extra: Partial<ListedModel> = {}) => {
      if (seen.has(model.path)) return;
      seen.add(model.path);
      const stat = statOf(model.path);
      listed.push({
        ...model,
        sizeBytes: extra.sizeBytes ?? stat?.size ?? 0,
        modifiedAt: extra.modifiedAt ?? (stat ? stat.mtime.toISOString() : new Date(0).toISOString()),
        digest: extra.digest ?? "",
        quant: extra.quant,
      });
    };
    for (const model of this.options.commandLine) add(model);
    for (const [name, file] of Object.entries(BUNDLED_MODELS)) add({ name, path: path.join(packageRoot(), file) });
    for (const entry of this.storeEntries()) {
      add(
        { name: entry.refs[0] ?? entry.file, path: this.storeFile(entry) },
        { sizeBytes: entry.size, modifiedAt: entry.pulledAt, digest: entry.sha256 ?? "", quant: entry.quant },
      );
    }
    return listed;
  }

  /** The store's manifest, read only (the server never writes the store), files that exist. */
  private storeEntries(): ManifestEntry[] {
    let manifest;
    try {
      manifest = parseManifest(fs.readFileSync(path.join(this.options.modelsDir, "manifest.json"), "utf8"));
    } catch {
      return [];
    }
    return (manifest?.files ?? []).filter((e) => !e.file.split("/").includes("..") && isFile(this.storeFile(e)));
  }

  private storeFile(entry: ManifestEntry): string {
    return path.join(this.options.modelsDir, ...entry.file.split("/"));
  }
}

function statOf(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}

function isFile(file: string): boolean {
  return statOf(file)?.isFile() === true;
}
