import { formatDuration, formatRate } from "./format.js";

export interface RunStats {
  loadMs: number;
  totalMs: number;
  promptTokens: number;
  promptMs: number | null;
  promptTokensPerSecond: number | null;
  generatedTokens: number;
  generationMs: number | null;
  generationTokensPerSecond: number | null;
  ttftMs: number | null;
}

/** ollama's `--verbose` summary layout, which users already know how to read. */
export function formatRunStats(s: RunStats): string {
  const rows: [string, string][] = [
    ["total duration", formatDuration(s.totalMs)],
    ["load duration", formatDuration(s.loadMs)],
    ["prompt eval count", `${s.promptTokens} token(s)`],
    ["prompt eval duration", s.promptMs === null ? "-" : formatDuration(s.promptMs)],
    ["prompt eval rate", formatRate(s.promptTokensPerSecond)],
    // The tokens the eval duration covers (from the first generated token to the last), so that
    // count / duration is the rate shown; the first one comes out of the prompt pass (TTFT).
    ["eval count", `${Math.max(0, s.generatedTokens - 1)} token(s) after the first`],
    ["eval duration", s.generationMs === null ? "-" : formatDuration(s.generationMs)],
    ["eval rate", formatRate(s.generationTokensPerSecond)],
    ["time to first token", s.ttftMs === null ? "-" : formatDuration(s.ttftMs)],
  ];
  return rows.map(([k, v]) => `${(k + ":").padEnd(22)}${v}`).join("\n") + "\n";
}
