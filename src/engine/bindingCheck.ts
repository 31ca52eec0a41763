import childProcess, { type ChildProcess, type ForkOptions } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import os from "node:os";
import { syncBuiltinESMExports } from "node:module";
import { checkKey, readCheckCache, writeCheckCache } from "../fs/checkCache.js";

/**
 * node-llama-cpp loads a prebuilt binary only after a child process has loaded it and initialised
 * its backends (testBindingBinary.js): a binary that crashes on this machine must not take the
 * process down. That child costs about half a second on every start (537 of getLlama's 603 ms on
 * the 2-core dev machine, measured), yet its answer changes only when the binary, Node, the kernel
 * or the CPU does. So lmrun remembers a passed check for exactly those (binary path, size and
 * mtime, Node's ABI, kernel release, CPU model) and, on a match, answers node-llama-cpp's check
 * itself with the messages its child would have sent. Anything else runs the real check, whose
 * outcome is recorded only when it passed. LMRUN_BINDING_CHECK=always turns the memory off.
 */

const TEST_SCRIPT = "testBindingBinary.js";

interface CheckCache {
  version: 1;
  passed: Record<string, string>;
}

type Message = { type: string; bindingBinaryPath?: string };
type Fork = typeof childProcess.fork;

let installed = false;

/** Installs the memory for this process (before node-llama-cpp's first getLlama). */
export function rememberBindingChecks(cacheFile: string, env: NodeJS.ProcessEnv = process.env): void {
  if (installed || env.LMRUN_BINDING_CHECK === "always") return;
  installed = true;
  const original: Fork = childProcess.fork;
  const patched = function fork(this: unknown, modulePath: string | URL, ...rest: unknown[]): ChildProcess {
    const options = (Array.isArray(rest[0]) ? rest[1] : rest[0]) as ForkOptions | undefined;
    if (!String(modulePath).endsWith(TEST_SCRIPT) || options?.env?.TEST_BINDING_CP !== "true") {
      return (original as (...args: unknown[]) => ChildProcess).call(this, modulePath, ...rest);
    }
    // The options, with an execArgv the child can run (forkableExecArgv), where they were among the arguments.
    const forkable = { ...options, execArgv: options?.execArgv ?? forkableExecArgv() };
    const args = Array.isArray(rest[0]) ? [rest[0], forkable] : [forkable];
    return checkWithMemory(cacheFile, () => (original as (...args: unknown[]) => ChildProcess).call(this, modulePath, ...args));
  };
  childProcess.fork = patched as Fork;
  // node-llama-cpp imports `fork` as an ES binding: this makes it see the patched function.
  syncBuiltinESMExports();
}

/**
 * fork() gives the child this process's execArgv. In a process started as `node -e "..."` (or with
 * `--input-type=module`, as scripts and tests embed lmrun) that is the eval and its code: the check's child
 * would run that code instead of the check, and every binary would count as failing. Those arguments are left out.
 */
function forkableExecArgv(): string[] {
  const execArgv: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const arg = process.execArgv[i]!;
    if (arg === "-e" || arg === "--eval" || arg === "-p" || arg === "--print") i++;
    else if (!/^--(eval|print|input-type)=/.test(arg)) execArgv.push(arg);
  }
  return execArgv;
}

/** The identity a passed check holds for; undefined when the binary cannot be read. */
export function bindingCheckKey(bindingPath: string): string | undefined {
  try {
    const stat = fs.statSync(bindingPath);
    const cpu = os.cpus()[0]?.model ?? "";
    return checkKey([bindingPath, stat.size, stat.mtimeMs, process.versions.modules, process.arch, os.release(), cpu], 24);
  } catch {
    return undefined;
  }
}

function readCache(cacheFile: string): CheckCache {
  return readCheckCache<CheckCache>(cacheFile, (c) => c.version === 1 && typeof c.passed === "object" && c.passed !== null) ?? { version: 1, passed: {} };
}

function remember(cacheFile: string, key: string): void {
  const cache = readCache(cacheFile);
  cache.passed[key] = new Date().toISOString();
  writeCheckCache(cacheFile, cache, { mode: 0o644 }).catch(() => {});
}

/**
 * Stands in for the check's child. It says "ready" at once; on "start" it either answers from
 * memory or forks the real child and relays every message and its exit, recording a pass.
 */
function checkWithMemory(cacheFile: string, forkReal: () => ChildProcess): ChildProcess {
  const proxy = new EventEmitter() as EventEmitter & { exitCode: number | null; killed: boolean; send(m: Message): boolean; kill(): boolean };
  let real: ChildProcess | undefined;
  let key: string | undefined;
  let passed = false;
  proxy.exitCode = null;
  proxy.killed = false;
  const exit = (code: number) => {
    if (proxy.exitCode !== null) return;
    proxy.exitCode = code;
    setImmediate(() => proxy.emit("exit", code, null));
  };
  const reply = (message: Message) => setImmediate(() => proxy.emit("message", message));
  proxy.send = (message) => {
    if (real) return real.send(message);
    if (message.type === "start" && message.bindingBinaryPath !== undefined) {
      key = bindingCheckKey(message.bindingBinaryPath);
      if (key !== undefined && readCache(cacheFile).passed[key] !== undefined) {
        reply({ type: "loaded" });
        return true;
      }
      real = forkReal();
      real.on("message", (m: Message) => {
        if (m.type === "ready") real!.send(message);
        else {
          if (m.type === "done") passed = true;
          proxy.emit("message", m);
        }
      });
      real.on("exit", (code) => {
        if (code === 0 && passed && key !== undefined) remember(cacheFile, key);
        exit(code ?? -1);
      });
      return true;
    }
    if (message.type === "test") reply({ type: "done" });
    else if (message.type === "exit") exit(0);
    return true;
  };
  proxy.kill = () => {
    proxy.killed = true;
    if (real) return real.kill("SIGKILL");
    exit(0);
    return true;
  };
  reply({ type: "ready" });
  return proxy as unknown as ChildProcess;
}
