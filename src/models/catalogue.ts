/**
 * The curated model catalogue (models.json at the package root): which models
 * `lmrun pull qwen2.5:0.5b` knows, where their GGUF files live on Hugging Face,
 * and what their bytes must hash to.
 *
 * Pure: no network, no node-llama-cpp. The only I/O is reading models.json.
 * Model references look like ollama's: `name[:tag][@QUANT]`, e.g. `qwen2.5`,
 * `qwen2.5:0.5b`, `llama3.2:1b@Q8_0`.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface CatalogueQuant {
  /** Exact file name in the repository (or of the bundled file). */
  file: string;
  /** Exact size in bytes, when known from a public source. */
  sizeBytes?: number;
  /** Approximate size in bytes, for display only, when no exact size is known. */
  approxSizeBytes?: number;
  /** SHA-256 of the whole file, lowercase hex, when known. */
  sha256?: string;
}

export interface CatalogueModel {
  name: string;
  /** Absent for a name with a single untagged entry (e.g. `tiny`). */
  tag?: string;
  /** The entry picked when the name is given without a tag. */
  default?: boolean;
  aliases: string[];
  description: string;
  family: string;
  /** Parameter count as usually quoted: "0.5B", "360M", "260K". */
  parameters: string;
  contextLength: number;
  license: string;
  /** Hugging Face `user/repo`; absent for bundled models. */
  repo?: string;
  /** Commit of `repo` that sizes and hashes were recorded at. */
  revision?: string;
  /** Path relative to the package root, for models shipped with lmrun. */
  bundled?: string;
  defaultQuant: string;
  quants: Record<string, CatalogueQuant>;
}

export interface Catalogue {
  $schema?: string;
  version: 1;
  models: CatalogueModel[];
}

/** One row of `listCatalogue`. */
export interface CatalogueListing {
  /** Canonical reference: `name:tag`, or `name` for untagged entries. */
  ref: string;
  name: string;
  tag?: string;
  /** True when `name` alone resolves to this entry. */
  isDefault: boolean;
  bundled: boolean;
  family: string;
  parameters: string;
  contextLength: number;
  license: string;
  description: string;
  defaultQuant: string;
  quants: string[];
  /** Size of the default quant: exact when known, else approximate. */
  sizeBytes?: number;
  sizeIsApproximate: boolean;
  aliases: string[];
}

/** `name[:tag][@QUANT]`, split. Names and tags are lowercased; the quant is uppercased. */
export interface CatalogueRef {
  name: string;
  tag?: string;
  quant?: string;
}

const SLUG = /^[a-z0-9][a-z0-9._-]*$/;
const ALIAS = /^[a-z0-9][a-z0-9._-]*(:[a-z0-9][a-z0-9._-]*)?$/;
const QUANT_NAME = /^[A-Z0-9]+(_[A-Z0-9]+)*$/;
const SHA256 = /^[0-9a-f]{64}$/;
const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REVISION = /^[0-9a-f]{40}$/;
const PARAMETERS = /^[0-9]+(\.[0-9]+)?[KMB]$/;
const LICENSE = /^[a-z0-9][a-z0-9.+-]*$/;

const MODEL_KEYS = new Set([
  "name",
  "tag",
  "default",
  "aliases",
  "description",
  "family",
  "parameters",
  "contextLength",
  "license",
  "repo",
  "revision",
  "bundled",
  "defaultQuant",
  "quants",
]);
const QUANT_KEYS = new Set(["file", "sizeBytes", "approxSizeBytes", "sha256"]);
const TOP_KEYS = new Set(["$schema", "version", "models"]);

/** models.json at the package root: `dist/models/catalogue.js` (or `src/models/catalogue.ts`) → `../../models.json`. */
export function defaultCataloguePath(): string {
  return fileURLToPath(new URL("../../models.json", import.meta.url));
}

const cache = new Map<string, Catalogue>();

/**
 * Reads and validates models.json (cached per path). Throws with every problem
 * listed when the file is not a valid catalogue.
 */
export function loadCatalogue(path: string = defaultCataloguePath()): Catalogue {
  const cached = cache.get(path);
  if (cached !== undefined) return cached;
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`cannot read the model catalogue ${path}: ${(error as Error).message}`);
  }
  const problems = validateCatalogue(data);
  if (problems.length > 0) {
    throw new Error(`invalid model catalogue ${path}:\n  - ${problems.join("\n  - ")}`);
  }
  const catalogue = data as Catalogue;
  cache.set(path, catalogue);
  return catalogue;
}

/** Forgets cached catalogues (tests). */
export function clearCatalogueCache(): void {
  cache.clear();
}

/** `name:tag`, or `name` for an untagged entry. Lowercase. */
export function canonicalRef(model: Pick<CatalogueModel, "name" | "tag">): string {
  const name = model.name.toLowerCase();
  return model.tag === undefined ? name : `${name}:${model.tag.toLowerCase()}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

/**
 * Checks a parsed models.json by hand (no JSON-schema dependency) and returns
 * every problem found, or [] when it is valid. Covers what models.schema.json
 * says plus the cross-entry rules a schema cannot express.
 */
export function validateCatalogue(data: unknown): string[] {
  const problems: string[] = [];
  if (!isRecord(data)) return ["catalogue must be a JSON object"];
  for (const key of Object.keys(data)) {
    if (!TOP_KEYS.has(key)) problems.push(`unknown top-level field "${key}"`);
  }
  if (data.version !== 1) problems.push(`version must be 1 (got ${JSON.stringify(data.version)})`);
  if (data.$schema !== undefined && typeof data.$schema !== "string") problems.push(`$schema must be a string`);
  const models = data.models;
  if (!Array.isArray(models)) {
    problems.push("models must be an array");
    return problems;
  }
  if (models.length === 0) problems.push("models must not be empty");

  // reference (lowercase) → where it was first defined
  const refs = new Map<string, string>();
  const byName = new Map<string, { where: string; isDefault: boolean; hasTag: boolean }[]>();

  models.forEach((raw: unknown, index: number) => {
    const where0 = `models[${index}]`;
    if (!isRecord(raw)) {
      problems.push(`${where0} must be an object`);
      return;
    }
    const name = typeof raw.name === "string" ? raw.name : undefined;
    const tag = typeof raw.tag === "string" ? raw.tag : undefined;
    const where = name === undefined ? where0 : `${where0} (${tag === undefined ? name : `${name}:${tag}`})`;

    for (const key of Object.keys(raw)) {
      if (!MODEL_KEYS.has(key)) problems.push(`${where}: unknown field "${key}"`);
    }

    // required strings
    for (const key of ["name", "description", "family", "parameters", "license", "defaultQuant"] as const) {
      if (!nonEmptyString(raw[key])) problems.push(`${where}: missing or empty "${key}"`);
    }
    if (name !== undefined && !SLUG.test(name)) {
      problems.push(`${where}: name "${name}" must be lowercase letters, digits, ".", "_" or "-"`);
    }
    if (raw.tag !== undefined) {
      if (tag === undefined || !SLUG.test(tag)) {
        problems.push(`${where}: tag ${JSON.stringify(raw.tag)} must be lowercase letters, digits, ".", "_" or "-"`);
      }
    }
    if (raw.default !== undefined && typeof raw.default !== "boolean") problems.push(`${where}: "default" must be a boolean`);
    if (nonEmptyString(raw.family) && !SLUG.test(raw.family)) problems.push(`${where}: family "${raw.family}" must be a lowercase slug`);
    if (nonEmptyString(raw.parameters) && !PARAMETERS.test(raw.parameters)) {
      problems.push(`${where}: parameters "${raw.parameters}" must look like 0.5B, 360M or 260K`);
    }
    if (nonEmptyString(raw.license) && !LICENSE.test(raw.license)) {
      problems.push(`${where}: license "${raw.license}" must be a lowercase SPDX id or licence name`);
    }
    if (!isPositiveInteger(raw.contextLength)) problems.push(`${where}: contextLength must be a positive integer`);

    // source: exactly one of repo / bundled
    const hasRepo = raw.repo !== undefined;
    const hasBundled = raw.bundled !== undefined;
    if (hasRepo === hasBundled) problems.push(`${where}: needs exactly one of "repo" or "bundled"`);
    if (hasRepo && (typeof raw.repo !== "string" || !REPO.test(raw.repo))) {
      problems.push(`${where}: repo ${JSON.stringify(raw.repo)} must be a Hugging Face "user/repo"`);
    }
    if (raw.revision !== undefined) {
      if (!hasRepo) problems.push(`${where}: "revision" needs "repo"`);
      if (typeof raw.revision !== "string" || !REVISION.test(raw.revision)) {
        problems.push(`${where}: revision must be a 40-character lowercase hex commit`);
      }
    }
    if (hasBundled) {
      const b = raw.bundled;
      if (typeof b !== "string" || !b.endsWith(".gguf") || b.startsWith("/") || b.includes("\\") || b.split("/").includes("..")) {
        problems.push(`${where}: bundled ${JSON.stringify(b)} must be a relative path to a .gguf file inside the package`);
      }
    }

    // quants
    const defaultQuant = typeof raw.defaultQuant === "string" ? raw.defaultQuant : undefined;
    if (defaultQuant !== undefined && defaultQuant !== "" && !QUANT_NAME.test(defaultQuant)) {
      problems.push(`${where}: defaultQuant "${defaultQuant}" must be an uppercase quant name like Q4_K_M`);
    }
    if (!isRecord(raw.quants) || Object.keys(raw.quants).length === 0) {
      problems.push(`${where}: "quants" must be a non-empty object`);
    } else {
      const quants = raw.quants;
      if (defaultQuant !== undefined && defaultQuant !== "" && !(defaultQuant in quants)) {
        problems.push(`${where}: defaultQuant "${defaultQuant}" is not among its quants (${Object.keys(quants).join(", ")})`);
      }
      const files = new Set<string>();
      for (const [quant, info] of Object.entries(quants)) {
        const qwhere = `${where} quant ${quant}`;
        if (!QUANT_NAME.test(quant)) problems.push(`${qwhere}: quant name must be uppercase like Q4_K_M`);
        if (!isRecord(info)) {
          problems.push(`${qwhere}: must be an object`);
          continue;
        }
        for (const key of Object.keys(info)) {
          if (!QUANT_KEYS.has(key)) problems.push(`${qwhere}: unknown field "${key}"`);
        }
        const file = info.file;
        if (!nonEmptyString(file)) {
          problems.push(`${qwhere}: missing "file"`);
        } else {
          if (!file.endsWith(".gguf")) problems.push(`${qwhere}: file "${file}" must end in .gguf`);
          if (file.includes("/") || file.includes("\\")) problems.push(`${qwhere}: file "${file}" must be a bare file name`);
          if (!file.toLowerCase().includes(quant.toLowerCase())) {
            problems.push(`${qwhere}: file "${file}" does not contain the quant name "${quant}"`);
          }
          if (files.has(file)) problems.push(`${qwhere}: file "${file}" is listed for two quants`);
          files.add(file);
        }
        if (info.sizeBytes !== undefined && !isPositiveInteger(info.sizeBytes)) {
          problems.push(`${qwhere}: sizeBytes must be a positive integer`);
        }
        if (info.approxSizeBytes !== undefined && !isPositiveInteger(info.approxSizeBytes)) {
          problems.push(`${qwhere}: approxSizeBytes must be a positive integer`);
        }
        if (info.sha256 !== undefined && (typeof info.sha256 !== "string" || !SHA256.test(info.sha256))) {
          problems.push(`${qwhere}: sha256 must be 64 lowercase hex characters`);
        }
      }
      if (hasBundled && typeof raw.bundled === "string" && nonEmptyString(defaultQuant)) {
        const bundledFile = raw.bundled.split("/").pop();
        const defaultInfo = quants[defaultQuant];
        if (isRecord(defaultInfo) && defaultInfo.file !== bundledFile) {
          problems.push(`${where}: bundled path does not end in the default quant's file "${String(defaultInfo.file)}"`);
        }
      }
    }

    // aliases
    if (!Array.isArray(raw.aliases)) {
      problems.push(`${where}: "aliases" must be an array (may be empty)`);
    } else {
      for (const alias of raw.aliases) {
        if (typeof alias !== "string" || !ALIAS.test(alias)) {
          problems.push(`${where}: alias ${JSON.stringify(alias)} must look like "name" or "name:tag" in lowercase`);
        }
      }
    }

    // uniqueness of references
    if (name !== undefined) {
      const ref = canonicalRef({ name, ...(tag === undefined ? {} : { tag }) });
      const seen = refs.get(ref);
      if (seen !== undefined) problems.push(`${where}: duplicate reference "${ref}" (also ${seen})`);
      else refs.set(ref, where);
      const list = byName.get(name.toLowerCase()) ?? [];
      list.push({ where, isDefault: raw.default === true, hasTag: tag !== undefined });
      byName.set(name.toLowerCase(), list);
    }
  });

  // aliases: unique, and never shadowing a canonical reference
  const aliasOwner = new Map<string, string>();
  models.forEach((raw: unknown, index: number) => {
    if (!isRecord(raw) || !Array.isArray(raw.aliases)) return;
    const where = `models[${index}]${typeof raw.name === "string" ? ` (${typeof raw.tag === "string" ? `${raw.name}:${raw.tag}` : raw.name})` : ""}`;
    for (const alias of raw.aliases) {
      if (typeof alias !== "string") continue;
      const key = alias.toLowerCase();
      const canonical = refs.get(key);
      if (canonical !== undefined) problems.push(`${where}: alias "${alias}" duplicates the reference of ${canonical}`);
      const owner = aliasOwner.get(key);
      if (owner !== undefined) problems.push(`${where}: duplicate alias "${alias}" (also ${owner})`);
      else aliasOwner.set(key, where);
      if (!key.includes(":") && byName.has(key)) problems.push(`${where}: alias "${alias}" shadows the model name "${key}"`);
    }
  });

  // defaults: a name with several entries needs exactly one default
  for (const [name, entries] of byName) {
    const defaults = entries.filter((e) => e.isDefault);
    if (defaults.length > 1) {
      problems.push(`name "${name}" has ${defaults.length} entries marked default (${defaults.map((e) => e.where).join(", ")})`);
    }
    if (entries.length > 1 && defaults.length === 0) {
      problems.push(`name "${name}" has ${entries.length} entries but none is marked "default": true`);
    }
    if (entries.length > 1 && entries.some((e) => !e.hasTag)) {
      problems.push(`name "${name}" has several entries, so every one needs a tag`);
    }
  }
  return problems;
}

/**
 * Splits `name[:tag][@QUANT]`. Returns undefined for an empty or malformed
 * reference (empty parts, more than one ":" or "@").
 */
export function parseCatalogueRef(ref: string): CatalogueRef | undefined {
  const trimmed = ref.trim();
  const at = trimmed.split("@");
  if (at.length > 2) return undefined;
  const [base = "", quantPart] = at;
  const colon = base.split(":");
  if (colon.length > 2) return undefined;
  const [name = "", tag] = colon;
  if (name === "" || tag === "" || quantPart === "") return undefined;
  const result: CatalogueRef = { name: name.toLowerCase() };
  if (tag !== undefined) result.tag = tag.toLowerCase();
  if (quantPart !== undefined) result.quant = quantPart.toUpperCase();
  return result;
}

/**
 * Finds an entry by name (case-insensitive) and optional tag. Aliases match too.
 * Without a tag (or with `latest`) the name's default entry is picked. `name`
 * may also be a whole `name:tag[@QUANT]` reference; the quant part is ignored.
 */
export function findCatalogueEntry(cat: Catalogue, name: string, tag?: string): CatalogueModel | undefined {
  let n = name.trim().toLowerCase();
  let t = tag?.trim().toLowerCase();
  if (t === "") t = undefined;
  const atIndex = n.indexOf("@");
  if (atIndex >= 0) n = n.slice(0, atIndex);
  if (t === undefined) {
    const colon = n.indexOf(":");
    if (colon >= 0) {
      t = n.slice(colon + 1) || undefined;
      n = n.slice(0, colon);
    }
  }
  if (n === "") return undefined;
  const ref = t === undefined ? n : `${n}:${t}`;

  const exact = cat.models.find((m) => canonicalRef(m) === ref);
  if (exact !== undefined) return exact;
  const aliased = cat.models.find((m) => m.aliases.some((a) => a.toLowerCase() === ref));
  if (aliased !== undefined) return aliased;
  if (t === undefined || t === "latest") return defaultEntry(cat, n);
  return undefined;
}

function defaultEntry(cat: Catalogue, name: string): CatalogueModel | undefined {
  const candidates = cat.models.filter((m) => m.name.toLowerCase() === name);
  if (candidates.length === 1) return candidates[0];
  return candidates.find((m) => m.default === true);
}

/** The quant to use for an entry: the requested one (case-insensitive) or its default. */
export function catalogueQuant(
  model: CatalogueModel,
  quant?: string,
): { quant: string; info: CatalogueQuant } | undefined {
  const wanted = (quant ?? model.defaultQuant).toUpperCase();
  for (const [key, info] of Object.entries(model.quants)) {
    if (key.toUpperCase() === wanted) return { quant: key, info };
  }
  return undefined;
}

/** Edit distance (insert, delete, substitute, each 1). */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * "Did you mean …?": up to `max` canonical references (or bare names that
 * resolve to a default) close to `input`, by edit distance or prefix, best first.
 */
export function suggestNames(cat: Catalogue, input: string, max = 3): string[] {
  const query = (input.trim().toLowerCase().split("@")[0] ?? "").trim();
  if (query === "" || max <= 0) return [];

  // candidate text → what to suggest for it
  const candidates = new Map<string, string>();
  const names = new Set<string>();
  for (const m of cat.models) {
    const ref = canonicalRef(m);
    candidates.set(ref, ref);
    for (const alias of m.aliases) {
      const key = alias.toLowerCase();
      if (!candidates.has(key)) candidates.set(key, ref);
    }
    names.add(m.name.toLowerCase());
  }
  for (const name of names) {
    if (!candidates.has(name) && defaultEntry(cat, name) !== undefined) candidates.set(name, name);
  }

  const threshold = Math.max(2, Math.floor(query.length / 3));
  const best = new Map<string, number>();
  for (const [text, suggestion] of candidates) {
    if (text === query) continue;
    let score = levenshtein(query, text);
    if (text.startsWith(query)) score = Math.min(score, 0.5);
    // a typo in the name part with a right tag, or vice versa
    const [qName, qTag] = query.split(":");
    const [cName, cTag] = text.split(":");
    if (qTag !== undefined && qTag === cTag && qName !== undefined && cName !== undefined) {
      score = Math.min(score, levenshtein(qName, cName));
    }
    if (score > threshold) continue;
    const previous = best.get(suggestion);
    if (previous === undefined || score < previous) best.set(suggestion, score);
  }
  return [...best.entries()]
    .sort((a, b) => a[1] - b[1] || a[0].length - b[0].length || a[0].localeCompare(b[0]))
    .slice(0, max)
    .map(([suggestion]) => suggestion);
}

/** Every entry, in catalogue order, ready for a table. */
export function listCatalogue(cat: Catalogue): CatalogueListing[] {
  return cat.models.map((m) => {
    const quant = m.quants[m.defaultQuant];
    const size = quant?.sizeBytes ?? quant?.approxSizeBytes;
    const row: CatalogueListing = {
      ref: canonicalRef(m),
      name: m.name,
      isDefault: defaultEntry(cat, m.name.toLowerCase()) === m,
      bundled: m.bundled !== undefined,
      family: m.family,
      parameters: m.parameters,
      contextLength: m.contextLength,
      license: m.license,
      description: m.description,
      defaultQuant: m.defaultQuant,
      quants: Object.keys(m.quants),
      sizeIsApproximate: quant?.sizeBytes === undefined && quant?.approxSizeBytes !== undefined,
      aliases: [...m.aliases],
    };
    if (m.tag !== undefined) row.tag = m.tag;
    if (size !== undefined) row.sizeBytes = size;
    return row;
  });
}
