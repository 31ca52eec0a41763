import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { lmrunHome } from "../config/paths.js";
import { LmrunError, UsageError } from "../errors.js";
import { writeFileAtomic } from "../fs/atomicWrite.js";
import { llamaCppBuild, nodeLlamaCppDir, nodeLlamaCppVersion } from "./binding.js";

/**
 * Engine builds: llama.cpp compiled from the source node-llama-cpp ships (`lmrun engine build`), with
 * backends the prebuilt binaries lack (RPC) or for this machine's GPU toolkit.
 *
 * node-llama-cpp compiles into node_modules/node-llama-cpp/llama/localBuilds/<folder>, which an
 * upgrade, a reinstall or an npx cache clean-up deletes. So each finished build is moved to
 * LMRUN_HOME/engines/<id>/build and node-llama-cpp's folder becomes a symbolic link to it, re-created
 * whenever it is missing. The id names what the binary depends on: the backend, the options, the
 * llama.cpp release and the node-llama-cpp version (its addon's ABI): a build made for another
 * node-llama-cpp version is never loaded, `engine ls` marks it stale.
 */
export type EngineGpu = "cpu" | "cuda" | "vulkan";

export interface EngineRecord {
  id: string;
  gpu: EngineGpu;
  rpc: boolean;
  /** The cmake options node-llama-cpp built with (and getLlama must be given to find the build). */
  cmakeOptions: Record<string, string>;
  /** node-llama-cpp's localBuilds folder name for those options. */
  folderName: string;
  nodeLlamaCppVersion: string;
  llamaCppRelease: string;
  llamaCppCommit: string;
  builtAt: string;
  buildSeconds: number;
  sizeBytes: number;
}

export interface EngineListing extends EngineRecord {
  dir: string;
  /** Usable with this node-llama-cpp (false: built for another version, rebuild it). */
  current: boolean;
}

/** LMRUN_ENGINES, else LMRUN_HOME/engines (a build is big and slow to make: share one between homes, as tests do). */
export function enginesDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LMRUN_ENGINES ? path.resolve(env.LMRUN_ENGINES) : path.join(lmrunHome(env), "engines");
}

/**
 * The cmake options of a build. With RPC: the RPC backend, and ggml's own threadpool (no OpenMP, as the
 * prebuilt binaries; lmrun's threadpool shim and its llama-bench comparisons assume it); loads pass
 * these options to find the build. Without: none, so that node-llama-cpp itself prefers the build to
 * its prebuilt binary for that backend (what fixes a prebuilt CUDA binary the driver cannot run).
 */
export function engineCmakeOptions(options: { rpc: boolean }): Record<string, string> {
  return options.rpc ? { GGML_OPENMP: "OFF", GGML_RPC: "ON" } : {};
}

export function engineId(options: { gpu: EngineGpu; rpc: boolean; nodeLlamaCppVersion?: string; llamaCppRelease?: string }): string {
  const release = options.llamaCppRelease ?? llamaCppBuild().release;
  const version = options.nodeLlamaCppVersion ?? nodeLlamaCppVersion();
  return `${options.gpu}${options.rpc ? "-rpc" : ""}-llama.cpp-${release}-nlc-${version}`;
}

export async function listEngines(env: NodeJS.ProcessEnv = process.env): Promise<EngineListing[]> {
  const root = enginesDir(env);
  let names: string[];
  try {
    names = await fs.readdir(root);
  } catch {
    return [];
  }
  const version = nodeLlamaCppVersion();
  const release = llamaCppBuild().release;
  const engines: EngineListing[] = [];
  for (const name of names.sort()) {
    const record = await readEngineRecord(path.join(root, name));
    if (!record) continue;
    engines.push({ ...record, dir: path.join(root, name), current: record.nodeLlamaCppVersion === version && record.llamaCppRelease === release });
  }
  return engines;
}

async function readEngineRecord(dir: string): Promise<EngineRecord | undefined> {
  try {
    const record = JSON.parse(await fs.readFile(path.join(dir, "engine.json"), "utf8")) as EngineRecord;
    return typeof record.id === "string" && typeof record.folderName === "string" ? record : undefined;
  } catch {
    return undefined;
  }
}

export async function saveEngineRecord(dir: string, record: EngineRecord): Promise<void> {
  await writeFileAtomic(path.join(dir, "engine.json"), JSON.stringify(record, null, 2) + "\n");
}

/** The build an --rpc run needs: one with RPC for the chosen backend (auto: CUDA, Vulkan, then CPU). */
export async function findRpcEngine(gpu: string, env: NodeJS.ProcessEnv = process.env): Promise<EngineListing> {
  const engines = (await listEngines(env)).filter((engine) => engine.rpc);
  const order: EngineGpu[] = gpu === "auto" ? ["cuda", "vulkan", "cpu"] : gpu === "cpu" || gpu === "cuda" || gpu === "vulkan" ? [gpu] : [];
  for (const wanted of order) {
    const match = engines.find((engine) => engine.gpu === wanted && engine.current);
    if (match) return match;
  }
  const stale = engines.find((engine) => !engine.current && (order.includes(engine.gpu) || gpu === "auto"));
  const gpuFlag = gpu === "auto" || gpu === "cpu" ? "" : ` --gpu ${gpu}`;
  if (stale) {
    throw new LmrunError(
      `the RPC engine build ${stale.id} was made for node-llama-cpp ${stale.nodeLlamaCppVersion} / llama.cpp ${stale.llamaCppRelease}, but this lmrun has ${nodeLlamaCppVersion()} / ${llamaCppBuild().release}`,
      { hint: `Rebuild it: lmrun engine build --rpc${gpuFlag} (then lmrun engine rm ${stale.id})` },
    );
  }
  if (gpu === "metal") throw new UsageError("--rpc with --gpu metal: lmrun engine build makes CPU, CUDA and Vulkan builds only");
  throw new LmrunError(`--rpc needs an engine build with llama.cpp's RPC backend${gpu === "auto" ? "" : ` for ${gpu}`}, and there is none (the prebuilt binaries have no RPC)`, {
    hint: `Build one (once, about 10-30 minutes): lmrun engine build --rpc${gpuFlag}`,
  });
}

/** An engine chosen by id (LMRUN_ENGINE). */
export async function findEngine(id: string, env: NodeJS.ProcessEnv = process.env): Promise<EngineListing> {
  const engines = await listEngines(env);
  const match = engines.find((engine) => engine.id === id);
  if (!match) {
    throw new UsageError(`no engine build "${id}"`, engines.length > 0 ? `lmrun engine ls lists them: ${engines.map((e) => e.id).join(", ")}` : "Make one with lmrun engine build");
  }
  if (!match.current) {
    throw new LmrunError(`the engine build ${id} was made for node-llama-cpp ${match.nodeLlamaCppVersion}, but this lmrun has ${nodeLlamaCppVersion()}`, {
      hint: `Rebuild it with lmrun engine build${match.rpc ? " --rpc" : ""}${match.gpu === "cpu" ? "" : ` --gpu ${match.gpu}`}`,
    });
  }
  return match;
}

/** Where node-llama-cpp looks for a local build of that folder name. */
export function localBuildPath(folderName: string): string {
  const dir = nodeLlamaCppDir();
  if (!dir) throw new LmrunError("node-llama-cpp is not installed");
  return path.join(dir, "llama", "localBuilds", folderName);
}

/**
 * Makes node-llama-cpp find the build: its localBuilds/<folder> must point at LMRUN_HOME/engines/<id>/build.
 * A reinstall of node_modules removes the link; it is made again here, before every load.
 */
export async function linkEngine(engine: EngineListing): Promise<void> {
  const target = path.join(engine.dir, "build");
  const link = localBuildPath(engine.folderName);
  const current = await fs.readlink(link).catch(() => undefined);
  if (current === target) return;
  // node-llama-cpp holds `<folder>.lock` while it compiles there (proper-lockfile): never pull that from under it.
  if (await fs.stat(`${link}.lock`).then(() => true, () => false)) {
    throw new LmrunError(`a build of ${engine.id} is running (${link}.lock); wait until it is done`);
  }
  const existing = await fs.lstat(link).catch(() => undefined);
  if (existing && !existing.isSymbolicLink()) {
    // A complete build node-llama-cpp made itself (`npx node-llama-cpp source build` with the same options): leave it.
    if (await fs.stat(path.join(link, "buildDone.status")).then(() => true, () => false)) return;
    // What an interrupted build left: not loadable, and in the way.
    await fs.rm(link, { recursive: true, force: true });
  }
  await fs.mkdir(path.dirname(link), { recursive: true });
  // Made under another name and renamed over the old link in one step: processes starting at once (two RPC
  // workers on a fresh install) each replace it whole, never find it half made (rm then symlink: EEXIST).
  const made = `${link}.${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  await fs.symlink(target, made, "dir");
  try {
    await fs.rename(made, link);
  } catch (error) {
    await fs.rm(made, { force: true });
    throw error;
  }
}

export async function removeEngine(id: string, env: NodeJS.ProcessEnv = process.env): Promise<EngineListing> {
  const engines = await listEngines(env);
  const match = engines.find((engine) => engine.id === id);
  if (!match) {
    throw new UsageError(`no engine build "${id}"`, engines.length > 0 ? `lmrun engine ls lists them: ${engines.map((e) => e.id).join(", ")}` : "There are none");
  }
  const link = (() => {
    try {
      return localBuildPath(match.folderName);
    } catch {
      return undefined;
    }
  })();
  if (link && (await fs.readlink(link).catch(() => undefined)) === path.join(match.dir, "build")) await fs.rm(link, { force: true });
  await fs.rm(match.dir, { recursive: true, force: true });
  return match;
}

export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await directorySize(full);
    else if (entry.isFile()) total += (await fs.stat(full)).size;
  }
  return total;
}
