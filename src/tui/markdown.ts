/**
 * A small Markdown reader for finished replies: fenced code blocks, headings, bullet and numbered
 * lists, block quotes, rules, and inline bold, italic and code. Enough for chat answers; anything
 * else stays as typed. Pure: components/Markdown.tsx turns the blocks into Ink elements.
 */
export interface Span {
  text: string;
  bold?: boolean;
  italic?: boolean;
  code?: boolean;
}

export type Block =
  | { kind: "code"; lang: string; lines: string[] }
  | { kind: "heading"; level: number; spans: Span[] }
  | { kind: "item"; marker: string; depth: number; spans: Span[] }
  | { kind: "quote"; spans: Span[] }
  | { kind: "rule" }
  | { kind: "blank" }
  | { kind: "line"; spans: Span[] };

export function parseMarkdown(source: string): Block[] {
  const blocks: Block[] = [];
  const lines = source.replace(/\r\n/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^\s*(```|~~~)\s*([\w+#.-]*)/.exec(line);
    if (fence) {
      const closer = fence[1]!;
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i]!.trimStart().startsWith(closer)) body.push(lines[i++]!);
      // An unclosed fence (a reply cut short) still renders as code.
      blocks.push({ kind: "code", lang: fence[2] ?? "", lines: body });
      continue;
    }
    if (line.trim() === "") {
      if (blocks.at(-1)?.kind !== "blank") blocks.push({ kind: "blank" });
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      blocks.push({ kind: "heading", level: heading[1]!.length, spans: parseInline(heading[2]!.replace(/\s#+\s*$/, "")) });
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      blocks.push({ kind: "rule" });
      continue;
    }
    const item = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/.exec(line);
    if (item) {
      const marker = /\d/.test(item[2]!) ? item[2]!.replace(")", ".") : "•";
      blocks.push({ kind: "item", marker, depth: Math.floor(item[1]!.replace(/\t/g, "  ").length / 2), spans: parseInline(item[3]!) });
      continue;
    }
    const quote = /^\s*>\s?(.*)$/.exec(line);
    if (quote) {
      blocks.push({ kind: "quote", spans: parseInline(quote[1]!) });
      continue;
    }
    blocks.push({ kind: "line", spans: parseInline(line) });
  }
  while (blocks.at(-1)?.kind === "blank") blocks.pop();
  while (blocks[0]?.kind === "blank") blocks.shift();
  return blocks;
}

const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__|\*(?=[^\s*])([^*]*?[^\s*])\*|(?<![\w])_(?=[^\s_])([^_]*?[^\s_])_(?![\w])/g;

export function parseInline(text: string): Span[] {
  const spans: Span[] = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    const index = match.index;
    if (index > last) spans.push({ text: text.slice(last, index) });
    if (match[2] !== undefined) spans.push({ text: match[2], code: true });
    else if (match[3] !== undefined || match[4] !== undefined) {
      for (const inner of parseInline(match[3] ?? match[4]!)) spans.push({ ...inner, bold: true });
    } else {
      for (const inner of parseInline(match[5] ?? match[6]!)) spans.push({ ...inner, italic: true });
    }
    last = index + match[0].length;
  }
  if (last < text.length) spans.push({ text: text.slice(last) });
  return spans;
}
