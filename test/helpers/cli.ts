import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoRoot } from "./shared.js";

export const cliPath = path.join(repoRoot, "bin", "lmrun.js");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  input?: string | Buffer;
  env?: Record<string, string | undefined>;
  home?: string;
  cwd?: string;
  timeoutMs?: number;
  /** Another copy of bin/lmrun.js to run (a package laid out elsewhere). */
  cli?: string;
}

/** A fresh LMRUN_HOME per test, removed by the caller (or left in the OS temp dir). */
export function tempHome(prefix = "lmrun-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function spawnCli(args: string[], options: CliOptions = {}): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", CI: "true", ...options.env };
  env.LMRUN_HOME = options.home ?? env.LMRUN_HOME ?? tempHome();
  for (const [k, v] of Object.entries(options.env ?? {})) if (v === undefined) delete env[k];
  return spawn(process.execPath, [options.cli ?? cliPath, ...args], {
    cwd: options.cwd ?? repoRoot,
    env,
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
}

/** Runs the built CLI as a child process, with stdin/stdout/stderr as pipes (never a TTY). */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, options);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 55_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

export interface WatchedChild {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves once `pattern` has appeared on the stream (no timing involved); rejects if the child ends first. */
  waitFor(stream: "stdout" | "stderr", pattern: RegExp): Promise<void>;
  /** The exit, and the milliseconds from `since` (e.g. the moment a signal was sent) to it. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null; endedAt: number }>;
}

/** spawnCli with its output collected, for tests that act on what the CLI has printed so far. */
export function watchCli(args: string[], options: CliOptions = {}): WatchedChild {
  const child = spawnCli(args, options);
  const text = { stdout: "", stderr: "" };
  const waiters: Array<() => void> = [];
  for (const stream of ["stdout", "stderr"] as const) {
    child[stream]!.setEncoding("utf8").on("data", (d: string) => {
      text[stream] += d;
      for (const check of [...waiters]) check();
    });
  }
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; endedAt: number }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, endedAt: Date.now() })),
  );
  return {
    child,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitFor(stream, pattern) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(text[stream])) return;
          waiters.splice(waiters.indexOf(check), 1);
          resolve();
        };
        waiters.push(check);
        check();
        void exit.then(() => {
          if (waiters.includes(check)) reject(new Error(`the CLI ended before ${pattern} appeared on ${stream}; stderr: ${text.stderr.slice(-500)}`));
        });
      });
    },
    exited: () => exit,
  };
}
