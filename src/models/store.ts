import fs from "node:fs/promises";
import path from "node:path";
import { acquireLock } from "./lock.js";
import { quantOfFileName } from "./ref.js";
import { syncDirectory, writeFileAtomic } from "../fs/atomicWrite.js";

/**
 * The model store: GGUF files under the models directory plus manifest.json, which records for each
 * file where it came from and what it hashes to. Files only arrive complete (pull renames them into
 * place), so the manifest can always be rebuilt from what is on disk.
 *
 * Layout (relative to the models directory):
 *   hf/USER/REPO/FILE.gguf           Hugging Face and catalogue models
 *   url/HOST/FILE.gguf               other URLs
 *   FILE.gguf.partial(.json)         an interrupted pull (data + where it came from)
 *   FILE.gguf.lock                   a pull in progress (pid inside)
 */
export interface ManifestEntry {
  /** Path relative to the models directory, with forward slashes. */
  file: string;
  /** References that resolved to this file, first one used as its name. */
  refs: string[];
  quant?: string;
  url?: string;
  size: number;
  sha256?: string;
  /** Where the expected hash came from: the catalogue, the server's LFS etag, the HF API, or computed here. */
  sha256Source?: "catalogue" | "etag" | "api" | "computed";
  pulledAt: string;
  lastUsed?: string;
  /** Found on disk without a record (a rebuilt manifest, or a crash between rename and record). */
  adopted?: boolean;
  /** The structural check of the file as it was (size and mtime): `problem` is what failed, absent when it passed. */
  checked?: FileCheck;
}

export interface FileCheck {
  size: number;
  mtimeMs: number;
  problem?: string;
}

export interface Manifest {
  version: 1;
  files: ManifestEntry[];
}

export const PARTIAL_SUFFIX = ".partial";
export const PARTIAL_META_SUFFIX = ".partial.json";
export const LOCK_SUFFIX = ".lock";
const MANIFEST = "manifest.json";

export interface LoadedManifest {
  manifest: Manifest;
  /** Why it was rebuilt or adjusted (a corrupt file, orphans adopted), for a warning. */
  notes: string[];
}

export class ModelStore {
  constructor(readonly dir: string) {}

  get manifestPath(): string {
    return path.join(this.dir, MANIFEST);
  }

  absolute(file: string): string {
    return path.join(this.dir, ...file.split("/"));
  }

  relative(absolutePath: string): string {
    return path.relative(this.dir, absolutePath).split(path.sep).join("/");
  }

  /**
   * Reads the manifest; a missing or corrupt one is rebuilt from the files, orphans are adopted and
   * lost files dropped. A repair is written back under the store lock, never by a bare reader.
   */
  async load(): Promise<LoadedManifest> {
    const result = await this.reconcile();
    if (result.changed && (await this.exists())) await this.update(() => {});
    return { manifest: result.manifest, notes: result.notes };
  }

  private async reconcile(): Promise<LoadedManifest & { changed: boolean }> {
    const notes: string[] = [];
    let manifest: Manifest | undefined;
    let present = true;
    try {
      manifest = parseManifest(await fs.readFile(this.manifestPath, "utf8"));
      if (manifest === undefined) notes.push(`the model manifest ${this.manifestPath} was corrupt and has been rebuilt from the files`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      present = false;
    }
    const onDisk = await this.scanModelFiles();
    const known = new Map((manifest?.files ?? []).map((e) => [e.file, e]));
    const files: ManifestEntry[] = [];
    for (const [file, stat] of onDisk) {
      const entry = known.get(file);
      if (entry !== undefined) {
        files.push(entry);
        continue;
      }
      const quant = quantOfFileName(path.basename(file));
      files.push({ file, refs: [referenceForStorePath(file)], size: stat.size, pulledAt: stat.mtime.toISOString(), adopted: true, ...(quant ? { quant } : {}) });
    }
    const changed =
      (manifest === undefined && (present || files.length > 0)) ||
      (manifest !== undefined && (files.length !== manifest.files.length || manifest.files.some((e) => !onDisk.has(e.file))));
    return { manifest: { version: 1, files }, notes, changed };
  }

  /** Writes the manifest atomically: a temp file, fsync, rename, then fsync of the directory. */
  async save(manifest: Manifest): Promise<void> {
    await writeFileAtomic(this.manifestPath, JSON.stringify(manifest, null, 2) + "\n", { mode: 0o644 });
  }

  /** Read-modify-write of the manifest under a store-wide lock, so concurrent pulls do not lose entries. */
  async update(change: (manifest: Manifest) => void): Promise<Manifest> {
    await fs.mkdir(this.dir, { recursive: true });
    const lock = await acquireLock(path.join(this.dir, MANIFEST + LOCK_SUFFIX), { pollMs: 25 });
    try {
      const { manifest } = await this.reconcile();
      change(manifest);
      await this.save(manifest);
      return manifest;
    } finally {
      await lock.release();
    }
  }

  async upsert(entry: ManifestEntry): Promise<void> {
    await this.update((manifest) => {
      const index = manifest.files.findIndex((e) => e.file === entry.file);
      if (index >= 0) {
        const previous = manifest.files[index]!;
        // A pull's own record beats what was guessed for a file found on disk.
        const refs = previous.adopted ? mergeRefs(entry.refs, previous.refs) : mergeRefs(previous.refs, entry.refs);
        const { adopted: _adopted, ...rest } = { ...previous, ...entry };
        manifest.files[index] = { ...rest, refs };
      } else manifest.files.push(entry);
    });
  }

  async addRef(file: string, ref: string): Promise<void> {
    await this.update((manifest) => {
      const entry = manifest.files.find((e) => e.file === file);
      if (entry) {
        entry.refs = mergeRefs(entry.refs, [ref]);
        entry.lastUsed = new Date().toISOString();
      }
    });
  }

  /** Records structural checks (file → check); a file changed since gets checked again. */
  async recordChecks(checks: Map<string, FileCheck>): Promise<void> {
    if (checks.size === 0) return;
    await this.update((manifest) => {
      for (const entry of manifest.files) {
        const check = checks.get(entry.file);
        if (check !== undefined) entry.checked = check;
      }
    });
  }

  private async exists(): Promise<boolean> {
    return fs.stat(this.dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
  }

  /** Complete model files (.gguf) under the store, relative path → stat. */
  async scanModelFiles(): Promise<Map<string, { size: number; mtime: Date }>> {
    const found = new Map<string, { size: number; mtime: Date }>();
    for (const file of await this.walk()) {
      if (!file.toLowerCase().endsWith(".gguf")) continue;
      const stat = await fs.stat(this.absolute(file)).catch(() => undefined);
      if (stat?.isFile()) found.set(file, { size: stat.size, mtime: stat.mtime });
    }
    return found;
  }

  /** Leftovers of interrupted pulls: partial data, their metadata, and locks. */
  async leftovers(): Promise<string[]> {
    return (await this.walk()).filter(
      (f) => f.endsWith(PARTIAL_SUFFIX) || f.endsWith(PARTIAL_META_SUFFIX) || (f.endsWith(LOCK_SUFFIX) && f !== MANIFEST + LOCK_SUFFIX),
    );
  }

  private async walk(): Promise<string[]> {
    const out: string[] = [];
    const visit = async (relative: string) => {
      let entries;
      try {
        entries = await fs.readdir(relative === "" ? this.dir : this.absolute(relative), { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const rel = relative === "" ? entry.name : `${relative}/${entry.name}`;
        if (entry.isDirectory()) await visit(rel);
        else if (entry.isFile() || entry.isSymbolicLink()) out.push(rel);
      }
    };
    await visit("");
    return out.sort();
  }

  /** Deletes a model file and every leftover of pulls of it; empty folders above it go too. */
  async removeFile(file: string): Promise<string[]> {
    const removed: string[] = [];
    for (const candidate of [file, file + PARTIAL_SUFFIX, file + PARTIAL_META_SUFFIX, file + LOCK_SUFFIX]) {
      try {
        await fs.rm(this.absolute(candidate));
        removed.push(candidate);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    await this.pruneEmptyDirectories(file);
    return removed;
  }

  /** Removes the directories above a file that are left empty, up to the store's own. */
  async pruneEmptyDirectories(file: string): Promise<void> {
    let dir = path.dirname(this.absolute(file));
    while (dir.startsWith(this.dir + path.sep)) {
      try {
        await fs.rmdir(dir);
      } catch {
        break;
      }
      dir = path.dirname(dir);
    }
  }
}

function mergeRefs(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}

export function parseManifest(text: string): Manifest | undefined {
  try {
    const value = JSON.parse(text) as Partial<Manifest>;
    if (value?.version !== 1 || !Array.isArray(value.files)) return undefined;
    const valid = value.files.every(
      (e) => typeof e?.file === "string" && Array.isArray(e.refs) && typeof e.size === "number" && typeof e.pulledAt === "string",
    );
    return valid ? (value as Manifest) : undefined;
  } catch {
    return undefined;
  }
}

/** The reference a store file answers to when the manifest has forgotten it. */
export function referenceForStorePath(file: string): string {
  const parts = file.split("/");
  if (parts[0] === "hf" && parts.length >= 4) return `hf:${parts[1]}/${parts[2]}/${parts.slice(3).join("/")}`;
  return parts.at(-1) ?? file;
}

export function storePathForHuggingFace(user: string, repo: string, file: string, branch = "main"): string {
  const base = ["hf", user, repo].join("/");
  return `${base}/${branch !== "main" ? `${safeSegment(branch)}/` : ""}${file.split("/").map(safeSegment).join("/")}`;
}

export function storePathForUrl(url: string): string {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.split("/").filter(Boolean).pop() ?? "model.gguf");
  return `url/${safeSegment(parsed.host)}/${safeSegment(name)}`;
}

function safeSegment(segment: string): string {
  const cleaned = segment.replace(/[^A-Za-z0-9._+-]/g, "_");
  return cleaned === "." || cleaned === ".." || cleaned === "" ? "_" : cleaned;
}

export { syncDirectory };
