import { UsageError } from "../../errors.js";

/** A worker as llama.cpp's RPC client addresses it: "host:port" (IPv4 or a host name; llama.cpp has no IPv6 here). */
export interface RpcEndpoint {
  host: string;
  port: number;
  /** "host:port", the string handed to ggml_backend_rpc_add_server. */
  address: string;
}

/** llama.cpp's GGML_RPC_MAX_SERVERS. */
export const MAX_RPC_WORKERS = 16;
export const DEFAULT_RPC_PORT = 50052;

/**
 * `--rpc A,B` / LMRUN_RPC: a comma-separated list of host:port. llama.cpp splits an endpoint at its
 * first ':' and aborts the process on one it cannot parse, so every rule is checked here first.
 */
export function parseRpcEndpoints(raw: string, source = "--rpc"): RpcEndpoint[] {
  const parts = raw.split(",").map((part) => part.trim()).filter((part) => part.length > 0);
  if (parts.length === 0) throw new UsageError(`${source} needs at least one worker as HOST:PORT`, "e.g. --rpc 192.168.1.10:50052,192.168.1.11:50052");
  if (parts.length > MAX_RPC_WORKERS) throw new UsageError(`${source}: llama.cpp takes at most ${MAX_RPC_WORKERS} workers, got ${parts.length}`);
  const seen = new Set<string>();
  return parts.map((part) => {
    const endpoint = parseRpcEndpoint(part, source);
    if (seen.has(endpoint.address)) throw new UsageError(`${source}: worker ${endpoint.address} is listed twice`);
    seen.add(endpoint.address);
    return endpoint;
  });
}

export function parseRpcEndpoint(part: string, source = "--rpc"): RpcEndpoint {
  const match = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(part);
  if (!match) {
    const hint = part.includes("[") || (part.match(/:/g) ?? []).length > 1
      ? "llama.cpp's RPC client takes IPv4 addresses and host names only (no IPv6)"
      : `Give HOST:PORT, e.g. 127.0.0.1:${DEFAULT_RPC_PORT}`;
    throw new UsageError(`${source}: "${part}" is not HOST:PORT`, hint);
  }
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw new UsageError(`${source}: port ${port} of "${part}" is out of range (1-65535)`);
  return { host: match[1]!, port, address: `${match[1]}:${port}` };
}

/** --tensor-split 3,1 (llama.cpp's -ts): one non-negative proportion per device, in llama.cpp's device order. */
export function parseTensorSplit(raw: string): number[] {
  const values = raw.split(/[,/]/).map((part) => part.trim());
  if (values.length === 0 || values.length > MAX_RPC_WORKERS || values.some((value) => !/^\d+(\.\d+)?$/.test(value))) {
    throw new UsageError(`--tensor-split: expected proportions such as 3,1, got "${raw}"`);
  }
  const numbers = values.map(Number);
  if (numbers.every((value) => value === 0)) throw new UsageError("--tensor-split: at least one proportion must be above 0");
  return numbers;
}
