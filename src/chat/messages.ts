import type { ChatMessage } from "../client/wire.js";

/**
 * A "messages" array as input files give it (`lmrun batch` requests, `lmrun eval gen` tasks), in the
 * OpenAI/ollama shape: [{"role": "system" | "user" | "assistant", "content": "..."}, ...], ending with
 * the user's turn to answer. Returns the messages, or the reason they are not that (the caller adds
 * where: a line number, a file name).
 */
export function parseChatMessages(value: unknown): ChatMessage[] | string {
  if (!Array.isArray(value) || value.length === 0) return '"messages" must be a non-empty array of {"role", "content"} objects';
  const messages: ChatMessage[] = [];
  for (const [i, m] of value.entries()) {
    if (typeof m !== "object" || m === null || Array.isArray(m)) return `message ${i + 1} is not a {"role", "content"} object`;
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (role === undefined) return `message ${i + 1} has no "role"`;
    if (role !== "system" && role !== "user" && role !== "assistant") return `message ${i + 1} has role ${JSON.stringify(role)}; roles are system, user and assistant`;
    if (typeof content !== "string") return `message ${i + 1}: "content" must be a string`;
    messages.push({ role, content });
  }
  if (messages.at(-1)!.role !== "user") return "the last message must be the user's turn to answer";
  return messages;
}
