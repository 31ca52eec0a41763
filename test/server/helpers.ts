import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnCli, tempHome } from "../helpers/cli.js";
import { writeThinkingOracle } from "../helpers/thinkingModel.js";

/**
 * A real `lmrun serve` child process on 127.0.0.1, on a free port the server picks itself
 * (--port 0; the URL is read from its "listening on" line). Every test file starts one or two and
 * stops them in afterAll.
 */
export interface ServeProcess {
  child: ChildProcess;
  url: string;
  home: string;
  /** Everything the server wrote to stderr so far (access log, notices). */
  log(): string;
  /** SIGTERM, then SIGKILL after 15 s; resolves with the exit code (null if killed). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServe(args: string[], options: { env?: Record<string, string | undefined>; home?: string } = {}): Promise<ServeProcess> {
  const home = options.home ?? tempHome("lmrun-serve-test-");
  const child = spawnCli(["serve", "--port", "0", ...args], { home, env: { LMRUN_HOST: undefined, LMRUN_API_KEY: undefined, ...options.env } });
  let log = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (log += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lmrun serve did not start within 90 s:\n${log}`)), 90_000);
    const check = () => {
      const match = /listening on (http:\/\/\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stderr!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`lmrun serve exited ${code} before listening:\n${log}`));
    });
  });
  let stopped: Promise<number | null> | undefined;
  return {
    child,
    url,
    home,
    log: () => log,
    stop(signal = "SIGTERM") {
      if (stopped) return stopped;
      if (child.exitCode !== null || child.signalCode !== null) return (stopped = exited);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      child.kill(signal);
      stopped = exited.finally(() => {
        clearTimeout(timer);
        fs.rmSync(home, { recursive: true, force: true });
      });
      return stopped;
    },
  };
}

/** Reads a whole HTTP answer (status, headers, body text) with fetch. */
export async function request(url: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; headers: Headers; text: string; body: any }> {
  const { json, ...rest } = init;
  const res = await fetch(url, {
    ...rest,
    ...(json !== undefined ? { method: rest.method ?? "POST", body: JSON.stringify(json), headers: { "content-type": "application/json", ...(rest.headers as Record<string, string>) } } : {}),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** Polls `check` until it holds (every 50 ms), failing with `what` after `limitMs`. */
export async function until(check: () => Promise<boolean>, what: string, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `lmrun serve` on the thinking oracle (helpers/thinkingModel.ts: a Qwen3-shaped GGUF whose greedy
 * thoughts and answer are known), written to a temporary folder as `model`; `stop` removes it too.
 * A context of 1024 by default: node-llama-cpp's function-calling instructions alone take ~570 tokens.
 */
export async function serveThinkingOracle(model: string, args: string[] = []): Promise<ServeProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-oracle-"));
  const server = await startServe([writeThinkingOracle(path.join(dir, model)), "-c", "1024", "--parallel", "1", "--keep-alive", "-1", ...args]);
  return {
    ...server,
    stop: async (signal) => {
      const code = await server.stop(signal);
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
