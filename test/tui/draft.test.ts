import { describe, expect, it } from "vitest";
import * as D from "../../src/tui/state/draft.js";

describe("draft editing", () => {
  it("inserts, deletes and moves by characters and words", () => {
    let d = D.insertText(D.EMPTY_DRAFT, "hello world");
    expect(d).toEqual({ text: "hello world", cursor: 11 });
    d = D.deleteWordBack(d);
    expect(d).toEqual({ text: "hello ", cursor: 6 });
    d = D.backspace(D.moveLeft(D.moveLeft(d)));
    expect(d).toEqual({ text: "helo ", cursor: 3 });
    d = D.deleteForward(d);
    expect(d).toEqual({ text: "hel ", cursor: 3 });
    expect(D.wordLeft(D.draftOf("ab cd")).cursor).toBe(3);
    expect(D.wordRight({ text: "ab cd", cursor: 0 }).cursor).toBe(2);
  });

  it("does not split surrogate pairs", () => {
    const d = D.draftOf("a😀");
    expect(D.backspace(d)).toEqual({ text: "a", cursor: 1 });
    expect(D.moveLeft(d).cursor).toBe(1);
  });

  it("moves between lines keeping the column, and reports when there is no line", () => {
    const d = { text: "abc\nde\nfghij", cursor: 11 };
    expect(D.cursorPosition(d)).toEqual({ row: 2, column: 4 });
    const up = D.moveVertical(d, -1)!;
    expect(D.cursorPosition(up)).toEqual({ row: 1, column: 2 });
    expect(D.moveVertical({ text: "one line", cursor: 3 }, -1)).toBeUndefined();
    expect(D.lineHome(d).cursor).toBe(7);
    expect(D.lineEnd({ text: "ab\ncd", cursor: 0 }).cursor).toBe(2);
  });

  it('handles """ fences as ollama does', () => {
    expect(D.isOpenFence('"""')).toBe(true);
    expect(D.isOpenFence('"""\nfirst line')).toBe(true);
    expect(D.isOpenFence('"""\nfirst line\n"""')).toBe(false);
    expect(D.isOpenFence("plain")).toBe(false);
    expect(D.submittedText('"""\nline one\nline two\n"""')).toBe("line one\nline two");
    expect(D.submittedText('"""inline"""')).toBe("inline");
    expect(D.submittedText("  plain  ")).toBe("plain");
  });
});
