import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../fs/atomicWrite.js";
import { parseTranscriptJson, transcriptToJson, type Transcript } from "./transcript.js";

/** Chat sessions, one JSON file each under LMRUN_HOME/sessions, written atomically after every change. */

export interface SessionSummary {
  id: string;
  createdAt: string;
  updatedAt: string;
  model: string;
  modelPath?: string;
  messages: number;
  /** The first user message, shortened: what the chat was about. */
  title: string;
  path: string;
}

/** Sortable and readable: 20261125-144853-3fa2. */
export function newSessionId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${stamp}-${crypto.randomBytes(2).toString("hex")}`;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class SessionStore {
  constructor(readonly dir: string) {}

  fileFor(id: string): string {
    if (!ID_PATTERN.test(id)) throw new Error(`invalid session id "${id}"`);
    return path.join(this.dir, `${id}.json`);
  }

  async save(session: Transcript): Promise<void> {
    await writeFileAtomic(this.fileFor(session.id), transcriptToJson(session));
  }

  async load(id: string): Promise<Transcript> {
    const raw = await fs.readFile(this.fileFor(id), "utf8");
    const t = parseTranscriptJson(raw);
    return { ...t, id };
  }

  /** Newest first. Unreadable files are skipped, not fatal: one bad file must not hide the others. */
  async list(): Promise<SessionSummary[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const summaries: SessionSummary[] = [];
    for (const name of names) {
      if (!name.endsWith(".json") || name.startsWith(".")) continue;
      const file = path.join(this.dir, name);
      try {
        const t = parseTranscriptJson(await fs.readFile(file, "utf8"));
        summaries.push(summarize({ ...t, id: name.slice(0, -".json".length) }, file));
      } catch {
        continue;
      }
    }
    return summaries.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : a.id < b.id ? 1 : -1));
  }

  /** An exact id, a unique prefix of one, or (no id) the most recent session. */
  async find(idOrPrefix: string | undefined): Promise<SessionSummary | { error: "none" | "unknown" | "ambiguous"; matches?: string[] }> {
    const all = await this.list();
    if (all.length === 0) return { error: "none" };
    if (idOrPrefix === undefined || idOrPrefix === "") return all[0]!;
    const exact = all.find((s) => s.id === idOrPrefix);
    if (exact) return exact;
    const matches = all.filter((s) => s.id.startsWith(idOrPrefix));
    if (matches.length === 1) return matches[0]!;
    return matches.length === 0 ? { error: "unknown" } : { error: "ambiguous", matches: matches.map((m) => m.id) };
  }
}

export function summarize(t: Transcript, file: string): SessionSummary {
  const firstUser = t.messages.find((m) => m.role === "user")?.text ?? "";
  const oneLine = firstUser.replace(/\s+/g, " ").trim();
  return {
    id: t.id,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    model: t.model.name,
    ...(t.model.path ? { modelPath: t.model.path } : {}),
    messages: t.messages.length,
    title: oneLine.length > 48 ? `${oneLine.slice(0, 47)}…` : oneLine,
    path: file,
  };
}
