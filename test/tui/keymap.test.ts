import { describe, expect, it } from "vitest";
import { decodeInput, SHORTCUTS, shortcutHelp } from "../../src/tui/keymap.js";

describe("keymap", () => {
  it("maps each shortcut's sequences to its action, with no sequence used twice", () => {
    const seen = new Map<string, string>();
    for (const s of SHORTCUTS) {
      for (const seq of s.sequences) {
        expect(seen.has(seq), `${JSON.stringify(seq)} is bound twice`).toBe(false);
        seen.set(seq, s.action);
        expect(decodeInput(seq)).toEqual([{ kind: "action", action: s.action }]);
      }
    }
  });

  it("decodes the keys the chat depends on", () => {
    expect(decodeInput("\r")).toEqual([{ kind: "action", action: "submit" }]);
    expect(decodeInput("\n")).toEqual([{ kind: "action", action: "newline" }]);
    expect(decodeInput("\x1b\r")).toEqual([{ kind: "action", action: "newline" }]);
    expect(decodeInput("\x03")).toEqual([{ kind: "action", action: "interrupt" }]);
    expect(decodeInput("\x04")).toEqual([{ kind: "action", action: "eof" }]);
    expect(decodeInput("\x07")).toEqual([{ kind: "action", action: "editor" }]);
    expect(decodeInput("\x1b[A")).toEqual([{ kind: "action", action: "up" }]);
  });

  it("treats typed text followed by Enter as text then submit", () => {
    expect(decodeInput("hello\r")).toEqual([
      { kind: "text", text: "hello" },
      { kind: "action", action: "submit" },
    ]);
  });

  it("reads carriage returns in an unbracketed chunk as Enter keys", () => {
    expect(decodeInput("one\rtwo\r")).toEqual([
      { kind: "text", text: "one" },
      { kind: "action", action: "submit" },
      { kind: "text", text: "two" },
      { kind: "action", action: "submit" },
    ]);
    // Typed ahead in line mode: the terminal turned Enter into "\n".
    expect(decodeInput("/clear\n")).toEqual([
      { kind: "text", text: "/clear" },
      { kind: "action", action: "submit" },
    ]);
  });

  it("keeps the new lines of a bracketed paste", () => {
    expect(decodeInput("a\r\nb\r", true)).toEqual([{ kind: "text", text: "a\nb\n" }]);
    expect(decodeInput("\r", true)).toEqual([{ kind: "text", text: "\n" }]);
    expect(decodeInput("\x1b[201~", true)).toEqual([{ kind: "action", action: "pasteEnd" }]);
  });

  it("drops unknown escape sequences and control bytes", () => {
    expect(decodeInput("\x1b[15~")).toEqual([]);
    expect(decodeInput("a\x00b")).toEqual([{ kind: "text", text: "ab" }]);
  });

  it("lists every visible shortcut in the help", () => {
    const help = shortcutHelp().join("\n");
    expect(help).toContain("Ctrl+G");
    expect(help).toContain("Ctrl+C");
    expect(help).not.toContain("pasteStart");
  });
});
