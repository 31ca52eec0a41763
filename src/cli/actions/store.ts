import fs from "node:fs/promises";
import path from "node:path";
import type { CommandContext } from "../context.js";
import { LmrunError } from "../../errors.js";
import { formatBytes, textTable } from "../../io/format.js";
import { startSpinner } from "../../io/progress.js";
import { sha256File } from "../../models/hash.js";
import { formatReference, parseReference } from "../../models/ref.js";
import { openStore, planReference } from "../../models/resolve.js";
import type { ManifestEntry, ModelStore } from "../../models/store.js";

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

export async function listModels(ctx: CommandContext, json: boolean): Promise<void> {
  const store = await openStore(ctx.env);
  const { manifest, notes } = await store.load();
  warnNotes(ctx, notes);
  const leftovers = (await store.leftovers()).filter((f) => f.endsWith(".partial"));
  const rows = await Promise.all(
    manifest.files.map(async (e) => {
      const stat = await fs.stat(store.absolute(e.file)).catch(() => undefined);
      return { entry: e, modified: stat?.mtime.toISOString() ?? e.pulledAt };
    }),
  );
  if (json) {
    ctx.out.json({
      modelsDir: store.dir,
      models: rows.map(({ entry, modified }) => ({
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
      })),
      partial: leftovers.map((file) => ({ file, path: store.absolute(file) })),
    });
    return;
  }
  if (rows.length === 0 && leftovers.length === 0) {
    ctx.out.info(`no models in ${store.dir} yet: try lmrun pull qwen2.5:0.5b`);
    ctx.out.text(textTable(["NAME", "QUANT", "SIZE", "MODIFIED"], []));
    return;
  }
  ctx.out.text(
    textTable(
      ["NAME", "QUANT", "SIZE", "MODIFIED"],
      rows.map(({ entry, modified }) => [entry.refs[0] ?? entry.file, entry.quant ?? "-", formatBytes(entry.size), formatAge(modified)]),
    ),
  );
  if (leftovers.length > 0) ctx.out.info(`${leftovers.length} interrupted pull(s): run lmrun pull again to resume, or lmrun rm to delete`);
}

/** Manifest entries (and leftover files) that a reference names: by reference, file name or store path. */
async function matchEntries(store: ModelStore, entries: ManifestEntry[], ref: string, env: NodeJS.ProcessEnv): Promise<{ entries: ManifestEntry[]; files: string[] }> {
  const wanted = new Set([ref.trim()]);
  try {
    wanted.add(formatReference(parseReference(ref)));
  } catch {
    // not a reference form: still matched by file name below
  }
  const matched = entries.filter((e) => e.refs.some((r) => wanted.has(r)) || e.file === ref || path.posix.basename(e.file) === ref || store.absolute(e.file) === path.resolve(ref));
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
  const results: { ref: string; removed: string[] }[] = [];
  for (const ref of refs) {
    const { files } = await matchEntries(store, manifest.files, ref, ctx.env);
    const removed: string[] = [];
    for (const file of files) removed.push(...(await store.removeFile(file)));
    if (removed.length === 0) {
      throw new LmrunError(`${ref} is not in the store (${store.dir})`, { hint: "lmrun ls lists what is there" });
    }
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
  status: "ok" | "corrupt" | "missing" | "recorded";
  expected: string | null;
  actual: string | null;
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
  const outcomes: VerifyOutcome[] = [];
  for (const entry of targets) {
    const name = entry.refs[0] ?? entry.file;
    const spinner = await startSpinner(`verifying ${name}`, { stderr: ctx.stderr, env: ctx.env, quiet: ctx.quiet || json });
    let actual: string | null = null;
    try {
      actual = (await sha256File(store.absolute(entry.file), { signal: ctx.signal, onProgress: (b) => spinner.update(`verifying ${name}  ${Math.floor((b / Math.max(entry.size, 1)) * 100)}%`) })).hex;
    } catch (error) {
      if (ctx.signal.aborted) throw error;
    } finally {
      spinner.stop();
    }
    const expected = entry.sha256 ?? null;
    const status: VerifyOutcome["status"] = actual === null ? "missing" : expected === null ? "recorded" : actual === expected ? "ok" : "corrupt";
    outcomes.push({ name, file: entry.file, status, expected, actual });
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
        `CORRUPT  ${name}: expected sha256 ${expected}, got ${actual} (${store.absolute(entry.file)})`;
      ctx.out.text(line + "\n");
    }
  }
  if (json) ctx.out.json({ files: outcomes });
  const bad = outcomes.filter((o) => o.status === "corrupt" || o.status === "missing");
  if (bad.length > 0) {
    throw new LmrunError(`${bad.length} of ${outcomes.length} model file(s) failed verification: ${bad.map((o) => o.name).join(", ")}`, {
      hint: `Delete and pull again: lmrun rm ${bad[0]!.name} && lmrun pull ${bad[0]!.name}`,
    });
  }
}
