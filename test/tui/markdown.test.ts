import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown } from "../../src/tui/markdown.js";

describe("markdown", () => {
  it("reads code blocks, lists, headings, quotes and rules", () => {
    const blocks = parseMarkdown("# Title\n\nSome text.\n\n```ts\nconst a = 1;\n\nconst b = 2;\n```\n- one\n  - nested\n2. two\n> quoted\n---");
    expect(blocks).toEqual([
      { kind: "heading", level: 1, spans: [{ text: "Title" }] },
      { kind: "blank" },
      { kind: "line", spans: [{ text: "Some text." }] },
      { kind: "blank" },
      { kind: "code", lang: "ts", lines: ["const a = 1;", "", "const b = 2;"] },
      { kind: "item", marker: "•", depth: 0, spans: [{ text: "one" }] },
      { kind: "item", marker: "•", depth: 1, spans: [{ text: "nested" }] },
      { kind: "item", marker: "2.", depth: 0, spans: [{ text: "two" }] },
      { kind: "quote", spans: [{ text: "quoted" }] },
      { kind: "rule" },
    ]);
  });

  it("renders an unclosed fence (a cut-off reply) as code", () => {
    expect(parseMarkdown("```\nx = 1")).toEqual([{ kind: "code", lang: "", lines: ["x = 1"] }]);
  });

  it("reads bold, italic and inline code, and leaves snake_case and lone stars alone", () => {
    expect(parseInline("a **bold** and *it* and `co*de*` end")).toEqual([
      { text: "a " },
      { text: "bold", bold: true },
      { text: " and " },
      { text: "it", italic: true },
      { text: " and " },
      { text: "co*de*", code: true },
      { text: " end" },
    ]);
    expect(parseInline("snake_case_name and 2 * 3 * 4")).toEqual([{ text: "snake_case_name and 2 * 3 * 4" }]);
    expect(parseInline("**bold _and italic_**")).toEqual([
      { text: "bold ", bold: true },
      { text: "and italic", italic: true, bold: true },
    ]);
  });
});
