import type { ContextUsage, ReplyStats } from "../engine/chatTypes.js";
import { formatDuration } from "../io/format.js";

/** Pure text for the status bar, /stats and the per-reply footer. */

export function formatTokensPerSecond(value: number | null): string {
  return value === null || !Number.isFinite(value) ? "- tok/s" : `${value.toFixed(1)} tok/s`;
}

export function formatMs(ms: number | null): string {
  return ms === null ? "-" : formatDuration(ms);
}

export function formatReplyStats(s: ReplyStats): string {
  return `${s.generatedTokens} tokens · ${formatTokensPerSecond(s.tokensPerSecond)} · first token ${formatMs(s.ttftMs)}`;
}

export function formatContext(c: ContextUsage): string {
  const shown = Math.min(c.size, Math.max(c.used, c.historyTokens));
  const percent = c.size > 0 ? Math.round((shown / c.size) * 100) : 0;
  return `ctx ${shown}/${c.size} (${percent}%)`;
}

/** The lines of /stats, in the layout of lms --stats. */
export function statsLines(s: ReplyStats | null, c: ContextUsage): string[] {
  if (!s) return ["no reply yet", formatContext(c)];
  return [
    `stop reason:         ${s.stopReason}`,
    `tokens/second:       ${s.tokensPerSecond === null ? "-" : s.tokensPerSecond.toFixed(2)}`,
    `time to first token: ${formatMs(s.ttftMs)}`,
    `prompt tokens:       ${s.promptTokens}`,
    `predicted tokens:    ${s.generatedTokens}`,
    `total time:          ${formatMs(s.totalMs)}`,
    `context:             ${Math.max(c.used, c.historyTokens)}/${c.size} tokens`,
  ];
}

/**
 * Word-wraps plain text to `width` columns (counting UTF-16 units, exact for the usual text).
 * The live reply is handed to Ink already wrapped, one <Text> per line: Ink then measures only
 * lines it has not seen (it caches by string), instead of re-wrapping the whole reply with
 * Unicode segmentation on every frame, which cost a quarter of a core at 100 tokens/s.
 */
export function wrapPlain(text: string, width: number): string[] {
  const w = Math.max(1, width);
  const rows: string[] = [];
  for (const line of text.split("\n")) {
    let rest = line;
    while (rest.length > w) {
      const space = rest.lastIndexOf(" ", w);
      const cut = space > 0 ? space : w;
      rows.push(rest.slice(0, cut));
      rest = space > 0 ? rest.slice(cut + 1) : rest.slice(cut);
    }
    rows.push(rest);
  }
  return rows;
}

/**
 * The last rows of a streaming reply that fit in `rows` rows of `width` columns. The live
 * area must stay shorter than the terminal: a taller frame makes Ink clear and repaint the
 * whole screen on every update, which flickers.
 */
export function tailToFit(text: string, width: number, rows: number): { lines: string[]; hiddenRows: number } {
  const all = wrapPlain(text, width);
  const keep = Math.max(1, rows);
  return { lines: all.slice(-keep), hiddenRows: Math.max(0, all.length - keep) };
}
