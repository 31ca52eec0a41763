/** The prompt being typed: text and a cursor (an index into the text). Pure functions only. */
export interface Draft {
  text: string;
  cursor: number;
}

export const EMPTY_DRAFT: Draft = { text: "", cursor: 0 };

export function draftOf(text: string): Draft {
  return { text, cursor: text.length };
}

export function insertText(d: Draft, text: string): Draft {
  return { text: d.text.slice(0, d.cursor) + text + d.text.slice(d.cursor), cursor: d.cursor + text.length };
}

export function backspace(d: Draft): Draft {
  if (d.cursor === 0) return d;
  const step = charBefore(d.text, d.cursor).length;
  return { text: d.text.slice(0, d.cursor - step) + d.text.slice(d.cursor), cursor: d.cursor - step };
}

export function deleteForward(d: Draft): Draft {
  if (d.cursor >= d.text.length) return d;
  const step = charAt(d.text, d.cursor).length;
  return { text: d.text.slice(0, d.cursor) + d.text.slice(d.cursor + step), cursor: d.cursor };
}

export function deleteWordBack(d: Draft): Draft {
  const start = wordStartBefore(d.text, d.cursor);
  return { text: d.text.slice(0, start) + d.text.slice(d.cursor), cursor: start };
}

export function moveLeft(d: Draft): Draft {
  return { ...d, cursor: Math.max(0, d.cursor - charBefore(d.text, d.cursor).length) };
}

export function moveRight(d: Draft): Draft {
  return { ...d, cursor: Math.min(d.text.length, d.cursor + charAt(d.text, d.cursor).length) };
}

export function wordLeft(d: Draft): Draft {
  return { ...d, cursor: wordStartBefore(d.text, d.cursor) };
}

export function wordRight(d: Draft): Draft {
  const match = /^\s*\S+/.exec(d.text.slice(d.cursor));
  return { ...d, cursor: match ? d.cursor + match[0].length : d.text.length };
}

export function lineHome(d: Draft): Draft {
  return { ...d, cursor: d.text.lastIndexOf("\n", d.cursor - 1) + 1 };
}

export function lineEnd(d: Draft): Draft {
  const next = d.text.indexOf("\n", d.cursor);
  return { ...d, cursor: next === -1 ? d.text.length : next };
}

/** Row and column of the cursor in the draft's lines. */
export function cursorPosition(d: Draft): { row: number; column: number } {
  const before = d.text.slice(0, d.cursor).split("\n");
  return { row: before.length - 1, column: before.at(-1)!.length };
}

/** Moves a line up or down keeping the column; undefined when there is no such line (history takes over). */
export function moveVertical(d: Draft, delta: -1 | 1): Draft | undefined {
  const lines = d.text.split("\n");
  const { row, column } = cursorPosition(d);
  const target = row + delta;
  if (target < 0 || target >= lines.length) return undefined;
  let index = 0;
  for (let i = 0; i < target; i++) index += lines[i]!.length + 1;
  return { ...d, cursor: index + Math.min(column, lines[target]!.length) };
}

const FENCE = '"""';

/** ollama's multi-line fence: a draft that opens with """ continues over Enter until a closing """. */
export function isOpenFence(text: string): boolean {
  const trimmed = text.trimStart();
  if (!trimmed.startsWith(FENCE)) return false;
  const rest = trimmed.slice(FENCE.length);
  return !rest.trimEnd().endsWith(FENCE);
}

/** The message a submitted draft stands for: fences removed, outer blank lines trimmed. */
export function submittedText(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith(FENCE) && trimmed.length >= 2 * FENCE.length && trimmed.endsWith(FENCE)) {
    return trimmed.slice(FENCE.length, -FENCE.length).replace(/^\s*\n|\n\s*$/g, "").trim();
  }
  return trimmed;
}

function charBefore(text: string, index: number): string {
  const code = text.charCodeAt(index - 1);
  return code >= 0xdc00 && code <= 0xdfff && index >= 2 ? text.slice(index - 2, index) : text.slice(index - 1, index);
}

function charAt(text: string, index: number): string {
  const code = text.charCodeAt(index);
  return code >= 0xd800 && code <= 0xdbff ? text.slice(index, index + 2) : text.slice(index, index + 1);
}

function wordStartBefore(text: string, index: number): number {
  const match = /\S+\s*$/.exec(text.slice(0, index));
  return match ? index - match[0].length : 0;
}
