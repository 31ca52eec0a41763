import { textTable } from "../io/format.js";
import type { SessionSummary } from "./sessionStore.js";

/** `lmrun chat --sessions`: newest first, the id is what --resume takes. */
export function formatSessionsTable(sessions: SessionSummary[]): string {
  if (sessions.length === 0) return "no saved chat sessions yet (start one with: lmrun chat MODEL)\n";
  return textTable(
    ["ID", "UPDATED", "MODEL", "MESSAGES", "FIRST MESSAGE"],
    sessions.map((s) => [s.id, s.updatedAt.replace("T", " ").slice(0, 19), s.model, String(s.messages), s.title]),
  );
}

export function sessionsJson(sessions: SessionSummary[]): unknown {
  return sessions.map((s) => ({
    id: s.id,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
    model: s.model,
    modelPath: s.modelPath ?? null,
    messages: s.messages,
    title: s.title,
    path: s.path,
  }));
}
