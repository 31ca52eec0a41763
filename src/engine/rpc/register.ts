import { constants } from "node:os";
import { existsSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../../config/paths.js";
import { LmrunError } from "../../errors.js";
import type { RpcEndpoint } from "./endpoints.js";
import { probeRpcWorkers, type PreflightOptions, type RpcWorkerInfo } from "./preflight.js";

/** A ggml device as the registry reports it (RPC workers' devices are named RPC0, RPC1, … with the endpoint as description). */
export interface GgmlDevice {
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel" | "unknown";
  backend: string;
  freeBytes: number;
  totalBytes: number;
}

interface RpcModule {
  available(): string;
  devices(): GgmlDevice[];
  addServer(endpoint: string, userTimeoutMs: number): GgmlDevice[];
  setTensorSplit(proportions: number[]): number;
  startServer(endpoint: string, cacheDir: string, threads: number, deviceNames: string[]): GgmlDevice[];
  serverState(): "idle" | "running" | "stopped";
}

/**
 * The llama.cpp release whose llama.h (llama_model_params, interposed for --tensor-split) rpc.c mirrors.
 * Another release gets no RPC until the declarations are checked again.
 */
export const RPC_VERIFIED_LLAMA_CPP_RELEASE = "v0.5.0";

let module: RpcModule | undefined;
let registered: { key: string; workers: RpcWorkerInfo[]; devices: GgmlDevice[] } | undefined;

export function rpcModulePath(): string {
  return path.join(packageRoot(), "dist", "native", "rpc.node");
}

/**
 * Loads native/rpc.c into the process, after node-llama-cpp loaded an engine build with the RPC
 * backend. RTLD_GLOBAL: its llama_model_load_from_file must come before libllama's (--tensor-split).
 */
export function loadRpcModule(llamaCppRelease: string): RpcModule {
  if (module) return module;
  if (process.platform !== "linux") throw new LmrunError("--rpc is available on Linux only in this lmrun");
  if (llamaCppRelease !== RPC_VERIFIED_LLAMA_CPP_RELEASE) {
    throw new LmrunError(`--rpc has not been checked against llama.cpp ${llamaCppRelease} (only ${RPC_VERIFIED_LLAMA_CPP_RELEASE})`);
  }
  const file = rpcModulePath();
  if (!existsSync(file)) throw new LmrunError("lmrun's native RPC module was not built (it needs a C compiler at install)", { hint: "Install gcc, then run `npm run build`" });
  const holder = { exports: {} as RpcModule };
  process.dlopen(holder, file, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
  const problem = holder.exports.available();
  if (problem) throw new LmrunError(`cannot use RPC: ${problem}`, { hint: "Build an engine with it: lmrun engine build --rpc" });
  module = holder.exports;
  return module;
}

export interface RegisterOptions extends PreflightOptions {
  /** --tensor-split proportions, in llama.cpp's device order (the workers first). */
  tensorSplit?: number[] | undefined;
  /**
   * Kernel-level limit on an unacknowledged send to a worker (TCP_USER_TIMEOUT), plus keep-alive probes,
   * so a worker whose machine vanishes fails the run instead of blocking it for ever (default 20 s).
   */
  deadWorkerTimeoutMs?: number | undefined;
}

/**
 * Makes RPC workers llama.cpp devices for every later model load in this process: checks each one
 * from JavaScript first (reachable, not busy, same protocol; llama.cpp itself would abort the process
 * or hang), then registers it in ggml's registry as llama.cpp's --rpc does. Registration cannot be
 * undone (ggml has no unregister), so a process registers one set of workers, once; asking again for
 * the same set is a no-op, another set is an error. Call it after the engine build is loaded
 * (getSharedLlama with the RPC engine) and before loadModel.
 */
export async function registerRpcWorkers(
  llamaCppRelease: string,
  endpoints: RpcEndpoint[],
  options: RegisterOptions = {},
): Promise<{ workers: RpcWorkerInfo[]; devices: GgmlDevice[] }> {
  const key = endpoints.map((endpoint) => endpoint.address).join(",");
  if (registered) {
    if (registered.key !== key) {
      throw new LmrunError(`this process already uses the RPC workers ${registered.key}; llama.cpp cannot drop them to use ${key}`, {
        hint: "Restart lmrun with the new --rpc list",
      });
    }
    return registered;
  }
  const native = loadRpcModule(llamaCppRelease);
  const workers = await probeRpcWorkers(endpoints, options);
  const devices: GgmlDevice[] = [];
  for (const endpoint of endpoints) {
    devices.push(...native.addServer(endpoint.address, options.deadWorkerTimeoutMs ?? 20_000));
  }
  if (options.tensorSplit && options.tensorSplit.length > 0) native.setTensorSplit(options.tensorSplit);
  registered = { key, workers, devices };
  return registered;
}

/** The workers this process registered, if any (for summaries and bench's backends column). */
export function registeredRpcWorkers(): { workers: RpcWorkerInfo[]; devices: GgmlDevice[] } | undefined {
  return registered;
}

/** Every device in ggml's registry (the local ones and the workers'); needs the module loaded. */
export function ggmlDevices(): GgmlDevice[] {
  return module ? module.devices() : [];
}
