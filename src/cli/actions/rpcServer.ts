import net from "node:net";
import os from "node:os";
import path from "node:path";
import { lmrunHome } from "../../config/paths.js";
import { LmrunError, UsageError } from "../../errors.js";
import { formatBytes } from "../../io/format.js";
import type { CommandContext } from "../context.js";

/** llama.cpp's own words (tools/rpc/rpc-server.cpp), then what to do instead. */
export function exposureWarning(host: string): string {
  return [
    "",
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    `WARNING: Host ('${host}') is != '127.0.0.1'`,
    "         Never expose the RPC server to an open network!",
    "         This is an experimental feature and is not secure!",
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    "The RPC protocol has no authentication and no encryption, and its server has had memory-safety",
    "vulnerabilities: anyone who can reach this port can crash this process, read or change what it",
    "computes, and possibly run code in it. Use it only on a trusted network, or keep --host 127.0.0.1",
    "and reach it through an SSH tunnel (ssh -N -L 50052:127.0.0.1:50052 user@this-machine) or WireGuard.",
    "",
  ].join("\n");
}

/** The server binds with inet_addr(): an IPv4 literal, not a host name. */
export function checkServerHost(host: string): void {
  if (net.isIPv4(host)) return;
  throw new UsageError(`--host must be an IPv4 address (llama.cpp's RPC server takes no host names or IPv6), got "${host}"`, "e.g. --host 127.0.0.1, or the LAN address of this machine");
}

async function portIsFree(host: string, port: number): Promise<true | string> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "EADDRINUSE" ? "the port is in use (another rpc-server?)" : error.code === "EADDRNOTAVAIL" ? "this machine has no such address" : error.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

export async function runRpcServer(
  ctx: CommandContext,
  flags: { host: string; port: number; threads?: number; device?: string; cache?: string | boolean; gpu?: string },
): Promise<void> {
  checkServerHost(flags.host);
  const endpoint = `${flags.host}:${flags.port}`;
  const free = await portIsFree(flags.host, flags.port);
  if (free !== true) throw new LmrunError(`cannot listen on ${endpoint}: ${free}`, { hint: "Choose another --port" });
  const gpu = flags.gpu ?? "auto";
  if (!["auto", "cpu", "cuda", "vulkan"].includes(gpu)) throw new UsageError(`--gpu: expected cpu, cuda or vulkan, got "${gpu}"`);
  const threads = flags.threads ?? Math.max(1, Math.floor(os.availableParallelism() / 2));
  const cacheDir = flags.cache === undefined || flags.cache === false ? "" : flags.cache === true ? path.join(lmrunHome(ctx.env), "rpc-cache") : path.resolve(flags.cache);

  const [{ findRpcEngine, linkEngine }, { getSharedLlama }, { loadRpcModule }, { probeRpcWorker }] = await Promise.all([
    import("../../engine/engines.js"),
    import("../../engine/llama.js"),
    import("../../engine/rpc/register.js"),
    import("../../engine/rpc/preflight.js"),
  ]);
  const engine = await findRpcEngine(gpu, ctx.env);
  await linkEngine(engine);
  const llama = await getSharedLlama(gpu as "auto", engine);
  const native = loadRpcModule(llama.llamaCppRelease.release);
  const names = flags.device?.split(",").map((name) => name.trim()).filter((name) => name.length > 0) ?? [];
  const known = native.devices();
  const unknown = names.find((name) => !known.some((device) => device.name === name));
  if (unknown !== undefined) {
    throw new UsageError(`unknown device "${unknown}"`, `This machine has: ${known.map((device) => `${device.name} (${device.description})`).join(", ")}`);
  }
  if (cacheDir) await import("node:fs/promises").then((fs) => fs.mkdir(cacheDir, { recursive: true }));
  if (flags.host !== "127.0.0.1") ctx.stderr.write(exposureWarning(flags.host) + "\n");

  const served = native.startServer(endpoint, cacheDir, threads, names);
  // Ready when it answers a hello (the server serves that probe, then waits for the next client).
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (native.serverState() === "stopped") throw new LmrunError(`llama.cpp's RPC server could not listen on ${endpoint}`);
    try {
      await probeRpcWorker({ host: flags.host, port: flags.port, address: endpoint }, { connectTimeoutMs: 1000, replyTimeoutMs: 5000 });
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const list = served.map((device) => `${device.name} (${device.description}, ${formatBytes(device.freeBytes)} free)`).join(", ");
  ctx.stderr.write(
    `lmrun rpc-server: listening on ${endpoint} (engine ${engine.id}, ${threads} thread${threads === 1 ? "" : "s"}${cacheDir ? `, cache ${cacheDir}` : ""}), serving ${list}; one client at a time; Ctrl-C stops it\n`,
  );
  // The server lives on its own native thread; this process only waits to be stopped.
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) return resolve();
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
    setInterval(() => {
      if (native.serverState() === "stopped") resolve();
    }, 1000);
  });
  if (native.serverState() === "stopped" && !ctx.signal.aborted) throw new LmrunError(`llama.cpp's RPC server on ${endpoint} stopped (it could not accept a connection)`);
  // Not a normal return: a client may be mid-request on the server thread, which nothing else can stop.
  process.exit(ctx.signal.aborted ? 130 : 1);
}
