/**
 * Every shortcut of the chat in one table. Raw terminal input is decoded here into actions,
 * so the input handling is a pure function that tests can feed bytes to.
 */
export type KeyAction =
  | "submit"
  | "newline"
  | "backspace"
  | "deleteForward"
  | "deleteWordBack"
  | "clearLine"
  | "left"
  | "right"
  | "wordLeft"
  | "wordRight"
  | "home"
  | "end"
  | "up"
  | "down"
  | "complete"
  | "interrupt"
  | "eof"
  | "editor"
  | "redraw"
  | "escape"
  | "pasteStart"
  | "pasteEnd";

export interface Shortcut {
  action: KeyAction;
  /** The raw byte sequences terminals send for it. */
  sequences: string[];
  keys: string;
  help: string;
}

export const SHORTCUTS: Shortcut[] = [
  { action: "submit", sequences: ["\r"], keys: "Enter", help: 'send the message (inside a """ block: new line)' },
  { action: "newline", sequences: ["\n", "\x1b\r", "\x1b\n"], keys: "Ctrl+J, Alt+Enter", help: "insert a new line" },
  { action: "interrupt", sequences: ["\x03"], keys: "Ctrl+C", help: "stop the reply; clear the draft; twice on an empty prompt: exit" },
  { action: "eof", sequences: ["\x04"], keys: "Ctrl+D", help: "exit (on an empty prompt)" },
  { action: "editor", sequences: ["\x07"], keys: "Ctrl+G", help: "edit the draft in $EDITOR" },
  { action: "complete", sequences: ["\t"], keys: "Tab", help: "complete a /command or a file path" },
  { action: "up", sequences: ["\x1b[A", "\x1bOA", "\x10"], keys: "Up, Ctrl+P", help: "previous prompt from history (or line up)" },
  { action: "down", sequences: ["\x1b[B", "\x1bOB", "\x0e"], keys: "Down, Ctrl+N", help: "next prompt from history (or line down)" },
  { action: "left", sequences: ["\x1b[D", "\x1bOD", "\x02"], keys: "Left, Ctrl+B", help: "move left" },
  { action: "right", sequences: ["\x1b[C", "\x1bOC", "\x06"], keys: "Right, Ctrl+F", help: "move right" },
  { action: "wordLeft", sequences: ["\x1b[1;5D", "\x1b[1;3D", "\x1bb"], keys: "Ctrl+Left, Alt+B", help: "move a word left" },
  { action: "wordRight", sequences: ["\x1b[1;5C", "\x1b[1;3C", "\x1bf"], keys: "Ctrl+Right, Alt+F", help: "move a word right" },
  { action: "home", sequences: ["\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~", "\x01"], keys: "Home, Ctrl+A", help: "start of line" },
  { action: "end", sequences: ["\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~", "\x05"], keys: "End, Ctrl+E", help: "end of line" },
  { action: "backspace", sequences: ["\x7f", "\b"], keys: "Backspace", help: "delete the character before the cursor" },
  { action: "deleteForward", sequences: ["\x1b[3~"], keys: "Delete", help: "delete the character under the cursor" },
  { action: "deleteWordBack", sequences: ["\x17", "\x1b\x7f"], keys: "Ctrl+W, Alt+Backspace", help: "delete the word before the cursor" },
  { action: "clearLine", sequences: ["\x15"], keys: "Ctrl+U", help: "clear the draft" },
  { action: "redraw", sequences: ["\x0c"], keys: "Ctrl+L", help: "redraw the screen" },
  { action: "escape", sequences: ["\x1b"], keys: "Esc", help: "close the completion list" },
  { action: "pasteStart", sequences: ["\x1b[200~"], keys: "", help: "" },
  { action: "pasteEnd", sequences: ["\x1b[201~"], keys: "", help: "" },
];

const BY_SEQUENCE = new Map<string, KeyAction>(SHORTCUTS.flatMap((s) => s.sequences.map((seq) => [seq, s.action] as const)));

export type DecodedInput = { kind: "action"; action: KeyAction } | { kind: "text"; text: string };

function cleanText(raw: string): string {
  return raw.replace(/\r\n?/g, "\n").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
}

/**
 * One chunk of raw input (Ink splits escape sequences apart) → what it means.
 * Inside a bracketed paste every line break is text. Outside one, a line break is the Enter
 * key even in the middle of a chunk (fast typing, tmux send-keys, type-ahead): the chat turns
 * bracketed paste on, so real pastes arrive bracketed and keep their new lines.
 */
export function decodeInput(raw: string, pasting = false): DecodedInput[] {
  const action = BY_SEQUENCE.get(raw);
  if (action !== undefined && (!pasting || action === "pasteEnd")) return [{ kind: "action", action }];
  if (raw.startsWith("\x1b")) return [];
  if (pasting) {
    const text = cleanText(raw);
    return text === "" ? [] : [{ kind: "text", text }];
  }
  const events: DecodedInput[] = [];
  // A lone "\n" is Ctrl+J (matched above); inside a longer chunk it is an Enter typed ahead
  // while the terminal was still in line mode (during model loading), which sends "\n".
  raw.split(/\r\n?|\n/).forEach((part, index) => {
    if (index > 0) events.push({ kind: "action", action: "submit" });
    const text = cleanText(part);
    if (text !== "") events.push({ kind: "text", text });
  });
  return events;
}

/** Shortcut lines for /help. */
export function shortcutHelp(): string[] {
  return SHORTCUTS.filter((s) => s.keys !== "").map((s) => `${s.keys.padEnd(24)}${s.help}`);
}
