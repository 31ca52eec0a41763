import type { ChatMessage } from "./types.js";

/**
 * A conversation's messages as the servers and generation read them, apart from any engine: which
 * tool call each tool result answers, and which oldest turns go when it is too long. Pure, so the
 * HTTP layer can check a request with it without loading the generation code.
 */

/**
 * Which tool call each tool message answers: the call whose id it names, else the first call of the
 * nearest earlier assistant message that is still unanswered (ollama's clients often name none).
 * `orphan` is the first tool message that answers nothing (the servers refuse it with a 400).
 */
export function linkToolResults(messages: ChatMessage[]): { resultOf(messageIndex: number, callIndex: number): string | undefined; orphan: number | undefined } {
  const results = new Map<string, string>();
  let orphan: number | undefined;
  let lastAssistant = -1;
  for (const [index, m] of messages.entries()) {
    if (m.role === "assistant") lastAssistant = index;
    if (m.role !== "tool") continue;
    const calls = lastAssistant >= 0 ? (messages[lastAssistant]!.toolCalls ?? []) : [];
    let callIndex = m.toolCallId !== undefined ? calls.findIndex((c, i) => c.id === m.toolCallId && !results.has(`${lastAssistant}:${i}`)) : -1;
    if (callIndex < 0) callIndex = calls.findIndex((_c, i) => !results.has(`${lastAssistant}:${i}`));
    if (callIndex < 0) {
      orphan ??= index;
      continue;
    }
    results.set(`${lastAssistant}:${callIndex}`, m.text);
  }
  return { resultOf: (messageIndex, callIndex) => results.get(`${messageIndex}:${callIndex}`), orphan };
}

/**
 * The longest tail of a conversation that fits, dropping its oldest messages but never a system
 * message or the last message; undefined if even those do not fit. `fits` is monotone in what is
 * dropped, so the number to drop is found by bisection (each test tokenises the whole template).
 */
export function dropOldestMessages(messages: ChatMessage[], fits: (candidate: ChatMessage[]) => boolean): ChatMessage[] | undefined {
  const droppable = messages.flatMap((m, index) => (m.role !== "system" && index < messages.length - 1 ? [index] : []));
  const without = (count: number) => {
    const dropped = new Set(droppable.slice(0, count));
    return messages.filter((_, index) => !dropped.has(index));
  };
  if (!fits(without(droppable.length))) return undefined;
  let low = 0;
  let high = droppable.length;
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    if (fits(without(mid))) high = mid;
    else low = mid + 1;
  }
  // A tool result without the assistant turn that called it is dropped too (it would answer nothing).
  return dropOrphanToolResults(without(low));
}

function dropOrphanToolResults(messages: ChatMessage[]): ChatMessage[] {
  let rest = messages;
  for (let orphan = linkToolResults(rest).orphan; orphan !== undefined; orphan = linkToolResults(rest).orphan) {
    rest = rest.filter((_, index) => index !== orphan);
  }
  return rest;
}
