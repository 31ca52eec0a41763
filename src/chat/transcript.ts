import type { ChatSampling, ChatTurn, ReplyStats } from "../engine/chatTypes.js";

/** A message as the chat keeps and saves it: what was typed, plus any attached files. */
export interface SavedMessage {
  role: "user" | "assistant";
  text: string;
  attachments?: { name: string; text: string }[];
  stats?: ReplyStats;
  /** The reply was stopped (Ctrl-C) before it finished. */
  stopped?: boolean;
}

export interface Transcript {
  version: 1;
  id: string;
  createdAt: string;
  updatedAt: string;
  model: { name: string; path?: string };
  system?: string;
  sampling?: Partial<ChatSampling>;
  messages: SavedMessage[];
}

/** The text the model receives for a user message: attached files first, then the question. */
export function userTurnText(message: Pick<SavedMessage, "text" | "attachments">): string {
  const files = (message.attachments ?? []).map((f) => `File ${f.name}:\n\`\`\`\n${f.text.replace(/\n$/, "")}\n\`\`\``);
  return [...files, message.text].filter((part) => part !== "").join("\n\n");
}

export function transcriptTurns(system: string | undefined, messages: SavedMessage[]): ChatTurn[] {
  const turns: ChatTurn[] = system ? [{ role: "system", text: system }] : [];
  for (const m of messages) turns.push({ role: m.role, text: m.role === "user" ? userTurnText(m) : m.text });
  return turns;
}

export function transcriptToJson(t: Transcript): string {
  return JSON.stringify(t, null, 2) + "\n";
}

const HEADING = { system: "## System", user: "## User", assistant: "## Assistant" } as const;

/** A readable Markdown transcript; `/load` reads it back (the `## User` / `## Assistant` headings split turns). */
export function transcriptToMarkdown(t: Transcript): string {
  const parts = [`# Chat with ${t.model.name}`, "", `_lmrun chat session ${t.id}, saved ${t.updatedAt}_`, ""];
  if (t.system) parts.push(HEADING.system, "", t.system, "");
  for (const m of t.messages) {
    parts.push(m.role === "user" ? HEADING.user : HEADING.assistant, "");
    if (m.role === "user") for (const f of m.attachments ?? []) parts.push(`Attached: \`${f.name}\``, "", "```", f.text.replace(/\n$/, ""), "```", "");
    parts.push(m.text === "" ? "_(no reply)_" : m.text);
    if (m.stopped) parts.push("", "_(stopped)_");
    parts.push("");
  }
  return parts.join("\n");
}

export class TranscriptFormatError extends Error {}

function isMessage(value: unknown): value is SavedMessage {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v.role === "user" || v.role === "assistant") && typeof v.text === "string";
}

export function parseTranscriptJson(raw: string): Transcript {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new TranscriptFormatError(`not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || !Array.isArray((value as { messages?: unknown }).messages)) {
    throw new TranscriptFormatError("expected an object with a messages array");
  }
  const v = value as Partial<Transcript> & { messages: unknown[] };
  const bad = v.messages.findIndex((m) => !isMessage(m));
  if (bad >= 0) throw new TranscriptFormatError(`message ${bad + 1} needs a role (user or assistant) and a text`);
  const now = new Date().toISOString();
  return {
    version: 1,
    id: typeof v.id === "string" ? v.id : "",
    createdAt: typeof v.createdAt === "string" ? v.createdAt : now,
    updatedAt: typeof v.updatedAt === "string" ? v.updatedAt : now,
    model: typeof v.model === "object" && v.model !== null && typeof v.model.name === "string" ? v.model : { name: "unknown" },
    ...(typeof v.system === "string" && v.system !== "" ? { system: v.system } : {}),
    ...(typeof v.sampling === "object" && v.sampling !== null ? { sampling: v.sampling } : {}),
    messages: v.messages as SavedMessage[],
  };
}

/** Reads back a transcript written by transcriptToMarkdown (attachments come back inline in the text). */
export function parseTranscriptMarkdown(raw: string): Transcript {
  const lines = raw.replace(/\r\n/g, "\n").split("\n");
  let system: string | undefined;
  const messages: SavedMessage[] = [];
  let current: { role: "system" | "user" | "assistant"; lines: string[] } | undefined;
  const flush = () => {
    if (!current) return;
    let text = current.lines.join("\n").trim();
    let stopped = false;
    if (text.endsWith("_(stopped)_")) {
      stopped = true;
      text = text.slice(0, -"_(stopped)_".length).trim();
    }
    if (text === "_(no reply)_") text = "";
    if (current.role === "system") system = text;
    else messages.push({ role: current.role, text, ...(stopped ? { stopped } : {}) });
  };
  let title = "unknown";
  for (const line of lines) {
    const role = line === HEADING.system ? "system" : line === HEADING.user ? "user" : line === HEADING.assistant ? "assistant" : undefined;
    if (role) {
      flush();
      current = { role, lines: [] };
    } else if (current) {
      current.lines.push(line);
    } else if (line.startsWith("# Chat with ")) {
      title = line.slice("# Chat with ".length).trim();
    }
  }
  flush();
  if (messages.length === 0 && system === undefined) {
    throw new TranscriptFormatError("no `## User` or `## Assistant` sections found");
  }
  const now = new Date().toISOString();
  return { version: 1, id: "", createdAt: now, updatedAt: now, model: { name: title }, ...(system ? { system } : {}), messages };
}

export function parseTranscript(fileName: string, raw: string): Transcript {
  return fileName.toLowerCase().endsWith(".md") || fileName.toLowerCase().endsWith(".markdown")
    ? parseTranscriptMarkdown(raw)
    : parseTranscriptJson(raw);
}

export function renderTranscript(fileName: string, t: Transcript): string {
  return fileName.toLowerCase().endsWith(".json") ? transcriptToJson(t) : transcriptToMarkdown(t);
}
