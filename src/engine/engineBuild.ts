import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { LmrunError } from "../errors.js";
import { acquireLock } from "../models/lock.js";
import { llamaCppBuild, nodeLlamaCppDir, nodeLlamaCppVersion } from "./binding.js";
import {
  directorySize,
  engineCmakeOptions,
  engineId,
  enginesDir,
  linkEngine,
  localBuildPath,
  saveEngineRecord,
  type EngineGpu,
  type EngineRecord,
} from "./engines.js";

export type EngineBuildEvent =
  | { type: "start"; id: string; logFile: string }
  | { type: "step"; done: number; total: number; what: string }
  | { type: "phase"; message: string }
  | { type: "waiting"; ownerPid: number | undefined };

export interface EngineBuildOptions {
  gpu: EngineGpu;
  rpc: boolean;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
  onEvent?: (event: EngineBuildEvent) => void;
}

/** A tool the build needs and how to get it (Debian/Ubuntu names; the message says what is missing). */
export async function missingBuildTool(gpu: EngineGpu, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const onPath = async (name: string): Promise<boolean> => {
    for (const dir of (env.PATH ?? "").split(path.delimiter)) {
      if (dir && (await fs.access(path.join(dir, name), fs.constants.X_OK).then(() => true, () => false))) return true;
    }
    return false;
  };
  // node-llama-cpp would download cmake when none is installed, which needs the internet: ask for it instead.
  if (!(await onPath("cmake"))) return "cmake is not installed (apt install cmake, or https://cmake.org/download)";
  const cxx = env.CXX ? [env.CXX] : ["c++", "g++", "clang++"];
  let found = false;
  for (const name of cxx) if (await onPath(name)) found = true;
  if (!found) return "no C++ compiler is installed (apt install build-essential)";
  if (!(await onPath("make")) && !(await onPath("ninja"))) return "neither make nor ninja is installed (apt install build-essential)";
  if (!(await onPath("git"))) return "git is not installed (apt install git); node-llama-cpp unpacks llama.cpp's source with it";
  if (gpu === "cuda" && !(await onPath("nvcc")) && !env.CUDACXX) return "the CUDA toolkit's nvcc is not on PATH (install the CUDA toolkit, or set CUDACXX)";
  if (gpu === "vulkan" && !(await onPath("glslc"))) return "the Vulkan SDK's glslc is not on PATH (apt install libvulkan-dev glslc)";
  return undefined;
}

/**
 * Builds llama.cpp from the source node-llama-cpp ships, through node-llama-cpp's own
 * `source download` (which unpacks its bundled llama.cpp release without the network, applies its
 * patches and compiles with cmake), with the cmake options as NODE_LLAMA_CPP_CMAKE_OPTION_* variables,
 * as its documentation says. Everything it prints goes to build.log; progress is read from cmake's
 * "[n/total]" lines. The result is moved under LMRUN_HOME/engines/<id> and linked back.
 */
export async function buildEngine(options: EngineBuildOptions): Promise<EngineRecord & { dir: string; logFile: string }> {
  const env = options.env ?? process.env;
  const missing = await missingBuildTool(options.gpu, env);
  if (missing) throw new LmrunError(`cannot build llama.cpp: ${missing}`);
  const packageDir = nodeLlamaCppDir();
  if (!packageDir) throw new LmrunError("node-llama-cpp is not installed");

  const id = engineId({ gpu: options.gpu, rpc: options.rpc });
  const root = enginesDir(env);
  await fs.mkdir(root, { recursive: true });
  // node-llama-cpp builds in one shared source tree: one build at a time on this machine.
  const lock = await acquireLock(path.join(root, ".build.lock"), {
    ...(options.signal ? { signal: options.signal } : {}),
    onWait: (ownerPid) => options.onEvent?.({ type: "waiting", ownerPid }),
  });
  try {
    const staging = path.join(root, `.${id}.partial`);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging, { recursive: true });
    const logFile = path.join(staging, "build.log");
    // The log is in the staging folder while the build runs (tail -f it), and moves with the build.
    options.onEvent?.({ type: "start", id, logFile });
    const cmakeOptions = engineCmakeOptions({ rpc: options.rpc });
    const startedAt = performance.now();
    await runNodeLlamaCppBuild({ packageDir, gpu: options.gpu, cmakeOptions, logFile, env, signal: options.signal, onEvent: options.onEvent });
    const buildSeconds = (performance.now() - startedAt) / 1000;

    return await storeBuild({ root, id, staging, gpu: options.gpu, rpc: options.rpc, cmakeOptions, buildSeconds, packageDir, onEvent: options.onEvent });
  } finally {
    await lock.release();
  }
}

/**
 * Moves node-llama-cpp's last build (llama/lastBuild.json) from its localBuilds folder into the store,
 * with its record, and links it back. `staging` already holds build.log.
 */
export async function storeBuild(options: {
  root: string;
  id: string;
  staging: string;
  gpu: EngineGpu;
  rpc: boolean;
  cmakeOptions: Record<string, string>;
  buildSeconds: number;
  packageDir: string;
  onEvent?: ((event: EngineBuildEvent) => void) | undefined;
}): Promise<EngineRecord & { dir: string; logFile: string }> {
  const { root, id, staging } = options;
  const dir = path.join(root, id);
  const lastBuild = JSON.parse(await fs.readFile(path.join(options.packageDir, "llama", "lastBuild.json"), "utf8")) as { folderName?: string };
  if (!lastBuild.folderName) throw new LmrunError(`node-llama-cpp finished but did not record its build (see ${path.join(staging, "build.log")})`);
  const built = localBuildPath(lastBuild.folderName);
  options.onEvent?.({ type: "phase", message: `keeping the build under ${dir}` });
  // Only what loading needs: the binaries and node-llama-cpp's "done" marker (not cmake's object files).
  await moveDir(path.join(built, "Release"), path.join(staging, "build", "Release"));
  await fs.writeFile(path.join(staging, "build", "buildDone.status"), "");
  await fs.rm(built, { recursive: true, force: true });
  const build = llamaCppBuild();
  const record: EngineRecord = {
    id,
    gpu: options.gpu,
    rpc: options.rpc,
    cmakeOptions: options.cmakeOptions,
    folderName: lastBuild.folderName,
    nodeLlamaCppVersion: nodeLlamaCppVersion(),
    llamaCppRelease: build.release,
    llamaCppCommit: build.commit,
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round(options.buildSeconds),
    sizeBytes: await directorySize(path.join(staging, "build")),
  };
  await saveEngineRecord(staging, record);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(staging, dir);
  await linkEngine({ ...record, dir, current: true });
  return { ...record, dir, logFile: path.join(dir, "build.log") };
}

async function moveDir(from: string, to: string): Promise<void> {
  await fs.mkdir(path.dirname(to), { recursive: true });
  try {
    await fs.rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
    // node_modules and LMRUN_HOME on different file systems.
    await fs.cp(from, to, { recursive: true, verbatimSymlinks: true });
    await fs.rm(from, { recursive: true, force: true });
  }
}

async function runNodeLlamaCppBuild(options: {
  packageDir: string;
  gpu: EngineGpu;
  cmakeOptions: Record<string, string>;
  logFile: string;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal | undefined;
  onEvent: ((event: EngineBuildEvent) => void) | undefined;
}): Promise<void> {
  const cli = path.join(options.packageDir, "dist", "cli", "cli.js");
  const env: NodeJS.ProcessEnv = { ...options.env };
  // node-llama-cpp reads CI as a boolean and fails on anything else (an empty CI=); CI mode also changes the build.
  delete env.CI;
  for (const key of Object.keys(env)) if (key.startsWith("NODE_LLAMA_CPP_CMAKE_OPTION_")) delete env[key];
  for (const [key, value] of Object.entries(options.cmakeOptions)) env[`NODE_LLAMA_CPP_CMAKE_OPTION_${key}`] = value;
  const args = [cli, "source", "download", "--gpu", options.gpu === "cpu" ? "false" : options.gpu, "--noUsageExample"];
  const log = createWriteStream(options.logFile);
  log.write(`$ ${Object.entries(options.cmakeOptions).map(([k, v]) => `NODE_LLAMA_CPP_CMAKE_OPTION_${k}=${v}`).join(" ")} node ${args.join(" ")}\n`);
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: path.dirname(path.dirname(options.packageDir)), env, stdio: ["ignore", "pipe", "pipe"], detached: true });
      const onAbort = (): void => {
        // The whole process group: cmake, ninja/make and the compilers under it.
        try {
          process.kill(-child.pid!, "SIGTERM");
        } catch {
          // already gone
        }
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      let tail = "";
      const onChunk = (chunk: Buffer): void => {
        log.write(chunk);
        tail = (tail + chunk.toString("utf8")).slice(-4000);
        for (const match of chunk.toString("utf8").matchAll(/\[(\d+)\/(\d+)\] (?:Building \w+ object |Linking \w+ \w+ library |Linking \w+ )?(\S+)/g)) {
          options.onEvent?.({ type: "step", done: Number(match[1]), total: Number(match[2]), what: path.basename(match[3] ?? "") });
        }
      };
      child.stdout.on("data", onChunk);
      child.stderr.on("data", onChunk);
      child.on("error", (error) => reject(error));
      child.on("close", (code, signal) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (options.signal?.aborted) return reject(options.signal.reason instanceof Error ? options.signal.reason : new Error("interrupted"));
        if (code === 0) return resolve();
        const lastError = tail
          .split("\n")
          .map((line) => line.replace(/\x1b\[[0-9;]*m/g, "").trim())
          .filter((line) => /error|fail|not found|could not/i.test(line))
          .at(-1);
        reject(
          new LmrunError(`building llama.cpp failed (${signal ? `signal ${signal}` : `exit ${code}`})${lastError ? `: ${lastError.slice(0, 300)}` : ""}`, {
            hint: `The full log is ${options.logFile}`,
          }),
        );
      });
    });
  } finally {
    await new Promise<void>((resolve) => log.end(resolve));
  }
}
