// Shared helpers for the benchmark scripts: timing child processes, medians, tables.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const sharedDir = path.resolve(repoRoot, "..", "shared");
export const lmrunBin = path.join(repoRoot, "bin", "lmrun.js");

export function sharedModel(name) {
  const file = path.join(sharedDir, "models", name);
  if (!fs.existsSync(file)) {
    console.error(`benchmark needs ${file} (../shared is missing)`);
    process.exit(1);
  }
  return file;
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs a command, returns {ms, stdout, stderr, code}. `until(stdout)` may end the run early:
 * the time is taken when it first returns true and the process is then killed. After `timeoutMs`
 * the process is killed and code is "timeout".
 */
export function timeCommand(command, args, { input, env, until, timeoutMs } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let doneAt;
    child.stdout.setEncoding("utf8").on("data", (d) => {
      stdout += d;
      if (until && doneAt === undefined && until(stdout)) {
        doneAt = performance.now();
        child.kill("SIGKILL");
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    let timedOut = false;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ ms: (doneAt ?? performance.now()) - started, stdout, stderr, code: timedOut ? "timeout" : code });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => "| " + cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ") + " |";
  console.log(line(header));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const row of rows) console.log(line(row));
}

export function loadAverage() {
  try {
    return fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}
