/**
 * Keep-alive durations as ollama reads them: a number is seconds, a string is a Go duration
 * ("5m", "1h30m", "90s", "250ms") or a bare number of seconds; any negative value means forever.
 * Returns milliseconds, -1 for forever; undefined when the text is not a duration.
 */
export function parseKeepAlive(value: unknown): number | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined;
    return value < 0 ? -1 : Math.round(value * 1000);
  }
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return parseKeepAlive(Number(text));
  const negative = text.startsWith("-");
  const body = negative ? text.slice(1) : text;
  const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...body.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== body) return undefined;
  if (negative) return -1;
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * unitMs[p[2]!]!, 0));
}

export function formatKeepAlive(ms: number): string {
  if (ms < 0) return "forever";
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
