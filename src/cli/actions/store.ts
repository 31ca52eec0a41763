import fsSync from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { CommandContext } from "../context.js";
import { LmrunError } from "../../errors.js";
import { formatBytes, textTable } from "../../io/format.js";
import { startSpinner } from "../../io/progress.js";
import { sha256File } from "../../models/hash.js";
import { parseReference, quantOfFileName } from "../../models/ref.js";
import { matchStoreEntries, openStore, planReference } from "../../models/resolve.js";
import { bytesOnDisk, readMeta } from "../../models/segments.js";
import { LOCK_SUFFIX, PARTIAL_META_SUFFIX, PARTIAL_SUFFIX, referenceForStorePath, type FileCheck, type ManifestEntry, type ModelStore } from "../../models/store.js";

/** ollama-style age: "3 minutes ago". */
export function formatAge(iso: string | undefined, now = Date.now()): string {
  if (iso === undefined) return "-";
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  const units: [number, string][] = [
    [86400 * 365, "year"],
    [86400 * 30, "month"],
    [86400 * 7, "week"],
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(seconds / size);
    if (n >= 1) return `${n} ${name}${n > 1 ? "s" : ""} ago`;
  }
  return "just now";
}

function warnNotes(ctx: CommandContext, notes: string[]): void {
  for (const note of notes) ctx.out.warn(note);
}

/** A file's structural problem (run's checks before loading), from the manifest when the file is unchanged since it was checked. */
async function fileProblems(store: ModelStore, entries: ManifestEntry[]): Promise<Map<string, string | undefined>> {
  const problems = new Map<string, string | undefined>();
  const fresh = new Map<string, FileCheck>();
  let check: ((file: string) => Promise<string | undefined>) | undefined;
  for (const entry of entries) {
    const stat = await fs.stat(store.absolute(entry.file)).catch(() => undefined);
    if (!stat?.isFile()) continue;
    if (entry.checked?.size === stat.size && entry.checked.mtimeMs === stat.mtimeMs) {
      problems.set(entry.file, entry.checked.problem);
      continue;
    }
    // Loaded only when a file needs it: node-llama-cpp's GGUF reader.
    check ??= (await import("../../engine/modelFile.js")).modelFileProblem;
    const problem = await check(store.absolute(entry.file));
    problems.set(entry.file, problem);
    fresh.set(entry.file, { size: stat.size, mtimeMs: stat.mtimeMs, ...(problem !== undefined ? { problem } : {}) });
  }
  await store.recordChecks(fresh).catch(() => undefined); // a read-only store still lists
  return problems;
}

interface PartialRow {
  name: string;
  file: string;
  downloadedBytes: number;
  totalBytes: number | null;
  modified: string;
}

/** Interrupted pulls: what each was fetching and how far it got. */
async function partialRows(store: ModelStore): Promise<PartialRow[]> {
  const rows: PartialRow[] = [];
  for (const file of (await store.leftovers()).filter((f) => f.endsWith(PARTIAL_SUFFIX))) {
    const stat = await fs.stat(store.absolute(file)).catch(() => undefined);
    const meta = await readMeta(store.absolute(file.slice(0, -PARTIAL_SUFFIX.length) + PARTIAL_META_SUFFIX));
    // A parallel pull's partial has holes: its segments say what is there, not its size.
    const downloaded = Array.isArray(meta?.segments) ? bytesOnDisk(meta.segments) : (stat?.size ?? 0);
    rows.push({
      name: referenceForStorePath(file.slice(0, -PARTIAL_SUFFIX.length)),
      file,
      downloadedBytes: downloaded,
      totalBytes: typeof meta?.size === "number" ? meta.size : null,
      modified: (stat?.mtime ?? new Date()).toISOString(),
    });
  }
  return rows;
}

export async function listModels(ctx: CommandContext, json: boolean): Promise<void> {
  const store = await openStore(ctx.env);
  const { manifest, notes } = await store.load();
  warnNotes(ctx, notes);
  const partials = await partialRows(store);
  const problems = await fileProblems(store, manifest.files);
  const rows = await Promise.all(
    manifest.files.map(async (e) => {
      const stat = await fs.stat(store.absolute(e.file)).catch(() => undefined);
      return { entry: e, modified: stat?.mtime.toISOString() ?? e.pulledAt, problem: problems.get(e.file) };
    }),
  );
  if (json) {
    ctx.out.json({
      modelsDir: store.dir,
      models: rows.map(({ entry, modified, problem }) => ({
        name: entry.refs[0],
        refs: entry.refs,
        quant: entry.quant ?? null,
        sizeBytes: entry.size,
        modifiedAt: modified,
        pulledAt: entry.pulledAt,
        lastUsed: entry.lastUsed ?? null,
        sha256: entry.sha256 ?? null,
        file: entry.file,
        path: store.absolute(entry.file),
        problem: problem ?? null,
      })),
      partial: partials.map((p) => ({ name: p.name, file: p.file, path: store.absolute(p.file), downloadedBytes: p.downloadedBytes, totalBytes: p.totalBytes, modifiedAt: p.modified })),
    });
    return;
  }
  if (rows.length === 0 && partials.length === 0) {
    ctx.out.info(`no models in ${store.dir} yet: try lmrun pull qwen2.5:0.5b`);
    ctx.out.text(textTable(["NAME", "QUANT", "SIZE", "MODIFIED"], []));
    return;
  }
  ctx.out.text(
    textTable(["NAME", "QUANT", "SIZE", "MODIFIED"], [
      ...rows.map(({ entry, modified, problem }) => [`${entry.refs[0] ?? entry.file}${problem !== undefined ? " (damaged)" : ""}`, entry.quant ?? "-", formatBytes(entry.size), formatAge(modified)]),
      ...partials.map((p) => [
        `${p.name} (partial)`,
        quantOfFileName(p.name) ?? "-",
        p.totalBytes !== null ? `${formatBytes(p.downloadedBytes)} of ${formatBytes(p.totalBytes)}` : formatBytes(p.downloadedBytes),
        formatAge(p.modified),
      ]),
    ]),
  );
  for (const { entry, problem } of rows) {
    if (problem !== undefined) ctx.out.warn(`${entry.refs[0] ?? entry.file} is damaged: ${problem}. Delete it (lmrun rm) and pull it again`);
  }
  if (partials.length > 0) ctx.out.info(`${partials.length} interrupted pull(s): run lmrun pull again to resume, or lmrun rm to delete`);
}

/** Manifest entries (and leftover files) that a reference names: by reference, file name or store path. */
async function matchEntries(store: ModelStore, entries: ManifestEntry[], ref: string, env: NodeJS.ProcessEnv): Promise<{ entries: ManifestEntry[]; files: string[] }> {
  const matched = matchStoreEntries(store, entries, ref);
  const files = new Set(matched.map((e) => e.file));
  // A reference that was never completed still names its file: its leftovers go too.
  try {
    const parsed = parseReference(ref);
    if (parsed.kind !== "hf-quant" && parsed.kind !== "path" && parsed.kind !== "bundled") {
      const resolution = await planReference(ref, store, env);
      if (resolution.kind === "remote") for (const t of resolution.plan.targets) files.add(t.file);
    }
  } catch {
    // unknown names simply match nothing
  }
  return { entries: matched, files: [...files] };
}

export async function removeModels(ctx: CommandContext, refs: string[], json: boolean): Promise<void> {
  const store = await openStore(ctx.env);
  const { manifest, notes } = await store.load();
  warnNotes(ctx, notes);
  // Every name is checked before anything is deleted: `rm nosuch existing` must not half-happen.
  const plans: { ref: string; files: string[] }[] = [];
  const unknown: string[] = [];
  for (const ref of refs) {
    const { files } = await matchEntries(store, manifest.files, ref, ctx.env);
    const present = [];
    for (const file of files) {
      const candidates = [file, file + PARTIAL_SUFFIX, file + PARTIAL_META_SUFFIX, file + LOCK_SUFFIX];
      if (candidates.some((c) => fsSync.existsSync(store.absolute(c)))) present.push(file);
    }
    if (present.length === 0) unknown.push(ref);
    else plans.push({ ref, files: present });
  }
  if (unknown.length > 0) {
    throw new LmrunError(`${unknown.join(", ")} ${unknown.length === 1 ? "is" : "are"} not in the store (${store.dir}); nothing was deleted`, { hint: "lmrun ls lists what is there" });
  }
  const results: { ref: string; removed: string[] }[] = [];
  for (const { ref, files } of plans) {
    const removed: string[] = [];
    for (const file of files) removed.push(...(await store.removeFile(file)));
    await store.update((m) => {
      m.files = m.files.filter((e) => !files.includes(e.file));
    });
    results.push({ ref, removed });
    if (!json) ctx.out.text(`deleted ${ref} (${removed.map((f) => path.posix.basename(f)).join(", ")})\n`);
  }
  if (json) ctx.out.json({ removed: results });
}

export interface VerifyOutcome {
  name: string;
  file: string;
  /** `damaged`: the file fails the structural checks run makes before loading (truncated, bad header). */
  status: "ok" | "corrupt" | "damaged" | "missing" | "recorded";
  expected: string | null;
  actual: string | null;
  problem: string | null;
}

export async function verifyModels(ctx: CommandContext, refs: string[], json: boolean): Promise<void> {
  const store = await openStore(ctx.env);
  const { manifest, notes } = await store.load();
  warnNotes(ctx, notes);
  let targets = manifest.files;
  if (refs.length > 0) {
    targets = [];
    for (const ref of refs) {
      const { entries } = await matchEntries(store, manifest.files, ref, ctx.env);
      if (entries.length === 0) throw new LmrunError(`${ref} is not in the store`, { hint: "lmrun ls lists what is there" });
      targets.push(...entries);
    }
  }
  if (targets.length === 0) {
    // An empty answer looked like success with nothing said.
    if (json) ctx.out.json({ files: [] });
    ctx.out.diag(`no models in ${store.dir}: nothing to verify`);
    return;
  }
  const { modelFileProblem } = await import("../../engine/modelFile.js");
  const outcomes: VerifyOutcome[] = [];
  const checks = new Map<string, FileCheck>();
  for (const entry of targets) {
    const name = entry.refs[0] ?? entry.file;
    const spinner = await startSpinner(`verifying ${name}`, { stderr: ctx.stderr, env: ctx.env, quiet: ctx.quiet || json });
    let actual: string | null = null;
    let problem: string | undefined;
    try {
      const file = store.absolute(entry.file);
      const stat = await fs.stat(file);
      // The structure first: a truncated file must never be approved, even with no hash to compare.
      problem = await modelFileProblem(file);
      checks.set(entry.file, { size: stat.size, mtimeMs: stat.mtimeMs, ...(problem !== undefined ? { problem } : {}) });
      actual = (await sha256File(file, { signal: ctx.signal, onProgress: (b) => spinner.update(`verifying ${name}  ${Math.floor((b / Math.max(entry.size, 1)) * 100)}%`) })).hex;
    } catch (error) {
      if (ctx.signal.aborted) throw error;
    } finally {
      spinner.stop();
    }
    const expected = entry.sha256 ?? null;
    const status: VerifyOutcome["status"] =
      actual === null ? "missing" : expected !== null && actual !== expected ? "corrupt" : problem !== undefined ? "damaged" : expected === null ? "recorded" : "ok";
    outcomes.push({ name, file: entry.file, status, expected, actual, problem: problem ?? null });
    if (status === "recorded") {
      await store.update((m) => {
        const e = m.files.find((f) => f.file === entry.file);
        if (e) Object.assign(e, { sha256: actual!, sha256Source: "computed" });
      });
    }
    if (!json) {
      const line =
        status === "ok" ? `ok       ${name}` :
        status === "recorded" ? `recorded ${name} (no hash was known; recorded ${actual})` :
        status === "missing" ? `MISSING  ${name} (${store.absolute(entry.file)})` :
        status === "damaged" ? `DAMAGED  ${name}: ${problem} (${store.absolute(entry.file)})` :
        `CORRUPT  ${name}: expected sha256 ${expected}, got ${actual} (${store.absolute(entry.file)})`;
      ctx.out.text(line + "\n");
    }
  }
  await store.recordChecks(checks).catch(() => undefined);
  if (json) ctx.out.json({ files: outcomes });
  const bad = outcomes.filter((o) => o.status === "corrupt" || o.status === "missing" || o.status === "damaged");
  if (bad.length > 0) {
    throw new LmrunError(`${bad.length} of ${outcomes.length} model file(s) failed verification: ${bad.map((o) => o.name).join(", ")}`, {
      hint: `Delete and pull again: lmrun rm ${bad[0]!.name} && lmrun pull ${bad[0]!.name}`,
    });
  }
}
