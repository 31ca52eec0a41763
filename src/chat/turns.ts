import type { ChatTurn } from "../engine/chatTypes.js";

/** Conversation edits shared by the chat engines (in-process and through a server). */

/** /clear: the system turn stays, the rest goes. */
export function systemTurnsOf(turns: ChatTurn[]): ChatTurn[] {
  return turns.filter((t) => t.role === "system");
}

/** /system TEXT: replaces the system turn (none when TEXT is empty), the rest kept. */
export function withSystemTurn(turns: ChatTurn[], text: string | undefined): ChatTurn[] {
  const rest = turns.filter((t) => t.role !== "system");
  return text ? [{ role: "system", text }, ...rest] : rest;
}
