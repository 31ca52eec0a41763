import { formatBytes, textTable } from "../io/format.js";
import type { PsEntry } from "./wire.js";

/** `lmrun ps`: the models a server holds, as `ollama ps` shows them. Pure: fetched elsewhere. */

export interface LoadedModelRow {
  name: string;
  path: string | undefined;
  sizeBytes: number;
  vramBytes: number;
  contextLength: number | undefined;
  parallel: number | undefined;
  busySlots: number | undefined;
  queued: number | undefined;
  /** ISO time the model unloads if idle; undefined: never (keep-alive -1). */
  expiresAt: string | undefined;
}

/** Far-future expiry is how ollama says "forever". */
const FOREVER_AFTER_MS = 100 * 365 * 24 * 3600 * 1000;

export function rowsOf(models: PsEntry[], now = Date.now()): LoadedModelRow[] {
  return models.map((m) => {
    const ext = (m.lmrun ?? {}) as Record<string, unknown>;
    const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
    const expires = m.expires_at !== undefined ? Date.parse(m.expires_at) : Number.NaN;
    return {
      name: m.name,
      path: typeof ext.path === "string" ? ext.path : undefined,
      sizeBytes: m.size,
      vramBytes: m.size_vram ?? 0,
      contextLength: num(m.context_length),
      parallel: num(ext.parallel),
      busySlots: num(ext.busySlots),
      queued: num(ext.queued),
      expiresAt: Number.isFinite(expires) && expires - now < FOREVER_AFTER_MS ? new Date(expires).toISOString() : undefined,
    };
  });
}

export function formatPsTable(rows: LoadedModelRow[], now = Date.now()): string {
  return textTable(
    ["NAME", "SIZE", "PROCESSOR", "CONTEXT", "SLOTS", "UNTIL"],
    rows.map((r) => [
      r.name,
      formatBytes(r.sizeBytes),
      processor(r.sizeBytes, r.vramBytes),
      r.contextLength !== undefined ? String(r.contextLength) : "-",
      r.parallel !== undefined ? `${r.busySlots ?? 0}/${r.parallel} busy${r.queued ? `, ${r.queued} queued` : ""}` : "-",
      until(r.expiresAt, now),
    ]),
  );
}

function processor(size: number, vram: number): string {
  if (vram <= 0 || size <= 0) return "100% CPU";
  if (vram >= size) return "100% GPU";
  const gpu = Math.round((vram / size) * 100);
  return `${100 - gpu}%/${gpu}% CPU/GPU`;
}

function until(expiresAt: string | undefined, now: number): string {
  if (expiresAt === undefined) return "forever";
  const seconds = Math.round((Date.parse(expiresAt) - now) / 1000);
  if (seconds <= 0) return "unloading";
  if (seconds < 60) return `${seconds} seconds from now`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} minute${minutes === 1 ? "" : "s"} from now`;
  return `${Math.round(minutes / 60)} hours from now`;
}

/** The loaded model a `stop` argument names: its served name, ollama's `model` field, or the file it was loaded from. */
export function findLoaded(models: PsEntry[], ref: string, realPath?: string): PsEntry | undefined {
  return (
    models.find((m) => m.name === ref || m.model === ref) ??
    (realPath !== undefined ? models.find((m) => (m.lmrun as { path?: unknown } | undefined)?.path === realPath) : undefined)
  );
}
