import v8 from "node:v8";
import type { Socket } from "node:net";
import { readSettings, type Settings } from "../../config/config.js";
import { DEFAULT_SERVE_HOST, DEFAULT_SERVE_PORT, parseHostSetting, removeServerRecord, serverUrl, writeServerRecord } from "../../config/serverRecord.js";
import type { ServableModel } from "../../engine/scheduler/modelPool.js";
import { UsageError } from "../../errors.js";
import { extendTerminationGrace, markTerminationHandled } from "../../termination.js";
import { isLoopbackHost } from "../../server/security.js";
import { formatAccessEntry, LmrunServer, type ServerBackend } from "../../server/server.js";
import type { ServeFlags } from "../commands/serve.js";
import type { CommandContext } from "../context.js";
import type { RpcLoadOptions } from "../../engine/types.js";
import { modelFacts, pullAllowed, resolveLoadOptions, resolveRpc, resolveSampling } from "../modelOptions.js";
import { RPC_CHILD_ENV, rpcChildCommand } from "../rpcChild.js";
import { ModelProcess, SERVE_CHILD_KEY_ENV } from "./serveModelProcess.js";
import { packageVersion } from "../version.js";

/**
 * Slots per model when --parallel is not given. Measured on 2 cores (README, "lmrun serve"): 4
 * concurrent requests on 4 slots generate about 1.7-2x the tokens per second of one, while each
 * slot costs its own --ctx of KV cache.
 */
export const DEFAULT_PARALLEL = 4;
export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;
export const DEFAULT_MAX_MODELS = 3;
export const DEFAULT_MAX_QUEUE = 64;
export const DEFAULT_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;
/** In-flight requests get this long to finish on SIGINT/SIGTERM before they are aborted. */
export const SHUTDOWN_GRACE_MS = 5_000;
const DEFAULT_PING_MS = 10_000;

export async function serveCommand(ctx: CommandContext, refs: string[], flags: ServeFlags): Promise<void> {
  // SIGTERM drains in-flight requests (up to SHUTDOWN_GRACE_MS, then 2 s for aborted ones to end) and
  // exits 0, instead of dying of the signal 1.5 s later as other commands do. Before any model loads:
  // the threadpool shim's native backstop reads the grace when it loads.
  extendTerminationGrace(SHUTDOWN_GRACE_MS + 3_000);
  const { host, port } = bindAddress(ctx.env, flags);
  // The child of a `serve --rpc` process: its key comes from the parent, and the parent is the server users see.
  const supervised = ctx.env[RPC_CHILD_ENV] === "1" ? ctx.env[SERVE_CHILD_KEY_ENV] || undefined : undefined;
  const apiKey = supervised ?? flags.apiKey ?? (ctx.env.LMRUN_API_KEY || undefined);
  if (apiKey !== undefined && apiKey.trim().length < 8) throw new UsageError("the API key is shorter than 8 characters", "Use a long random key, e.g. `openssl rand -hex 24`");
  const settings = await readSettings(ctx.env);
  const parallel = flags.parallel ?? DEFAULT_PARALLEL;
  const write = (line: string) => ctx.stderr.write(line);
  const rpc = resolveRpc(flags, ctx.env);
  const childCommand = rpcChildCommand(ctx.env, rpc);
  const backend = childCommand && rpc ? modelProcessBackend(childCommand, rpc, write) : await localBackend(ctx, refs, flags, settings, parallel, write);
  const server = new LmrunServer({
    ...backend.server,
    security: { apiKey, bindHost: host, allowHosts: flags.allowHost ?? [], corsOrigins: flags.cors ?? [] },
    bodyLimit: flags.maxBody ?? DEFAULT_BODY_LIMIT,
    pingMs: flags.ssePing !== undefined && flags.ssePing > 0 ? flags.ssePing : DEFAULT_PING_MS,
    log: (entry) => write(formatAccessEntry(entry, flags.logFormat ?? "text")),
  });
  const unwatchParent = supervised ? stopWhenParentGoes(ctx) : () => undefined;

  try {
    await backend.start(ctx.signal);
    if (ctx.signal.aborted) return;
    const address = await server.listen(host, port).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") throw new UsageError(`${host}:${port} is already in use`, "Stop the other server or pick another --port (0 = any free port)");
      if (error.code === "EADDRNOTAVAIL") throw new UsageError(`${host} is not an address of this machine`, "Use 127.0.0.1, 0.0.0.0 or one of this machine's addresses");
      throw error;
    });
    const url = serverUrl(host, address.port);
    if (!supervised) {
      await writeServerRecord({ pid: process.pid, url, host, port: address.port, startedAt: new Date().toISOString(), version: packageVersion() }, ctx.env);
      process.on("exit", () => removeServerRecord(process.pid, ctx.env));
    }
    if (!isLoopbackHost(host) && apiKey === undefined) {
      ctx.out.warn(`listening on ${host} WITHOUT an API key: anyone who can reach this machine can use its models (set --api-key or LMRUN_API_KEY)`);
    }
    write(`lmrun serve: listening on ${url} (${parallel} slots per model${backend.description}${apiKey !== undefined && !supervised ? ", API key required" : ""})\n`);

    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      ctx.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    // SIGINT/SIGTERM: stop accepting, let in-flight requests finish for a few seconds, abort the rest.
    if (!supervised) write(`lmrun serve: stopping (${server.activeRequests} request${server.activeRequests === 1 ? "" : "s"} in flight; Ctrl-C again to quit at once)\n`);
    const drained = await server.drain(SHUTDOWN_GRACE_MS);
    if (!drained) {
      backend.abort();
      await server.drain(2_000);
      server.closeAllConnections();
    }
    markTerminationHandled();
  } finally {
    unwatchParent();
    server.closeAllConnections();
    await backend.close();
    if (!supervised) removeServerRecord(process.pid, ctx.env);
  }
}

/** Where serve's requests are answered, and how that starts and ends. */
interface ServeBackend {
  server: ServerBackend;
  /** Added to the "listening on" line. */
  description: string;
  /** Before the server listens: the models given on the command line are loaded (or the model process started). */
  start(signal: AbortSignal): Promise<void>;
  /** Ends the requests still running once the shutdown grace is over. */
  abort(): void;
  close(): Promise<void>;
}

/**
 * The models in this process (without --rpc, or as the child of `serve --rpc`). Its modules load
 * here, not with this file: the parent of `serve --rpc` only forwards, and stays small.
 */
async function localBackend(ctx: CommandContext, refs: string[], flags: ServeFlags, settings: Settings, parallel: number, write: (line: string) => void): Promise<ServeBackend> {
  keepYoungGenerationSmall();
  const [{ ModelPool }, { Metrics }, { ModelNames }, { Service }, { modelsDirectory, resolveModel }] = await Promise.all([
    import("../../engine/scheduler/modelPool.js"),
    import("../../server/metrics.js"),
    import("../../server/modelNames.js"),
    import("../../server/service.js"),
    import("../../models/resolve.js"),
  ]);
  const { seed: drawnSeed, maxTokens: _runDefault, ...sampling } = resolveSampling(flags, settings);
  // A request without max_tokens / num_predict generates until the model stops or its slot's context
  // is full, as llama-server's and ollama's do (run's 512 would cut chat clients' answers short).
  const maxTokens = flags.maxTokens ?? settings.maxTokens ?? -1;
  // The operator's own references may be paths, URLs or pulls (as for run); a request's never are.
  const commandLine: ServableModel[] = [];
  for (const ref of refs) {
    const resolved = await resolveModel(ref, { env: ctx.env, pull: pullAllowed(), signal: ctx.signal });
    commandLine.push({ name: resolved.displayName, path: resolved.path });
  }
  const names = new ModelNames({ commandLine, modelsDir: modelsDirectory(ctx.env, settings), env: ctx.env });
  let started = false;
  const keepAliveMs = flags.keepAlive ?? DEFAULT_KEEP_ALIVE_MS;
  const pool = new ModelPool({
    loadOptionsFor: (path) => ({ ...resolveLoadOptions(flags, ctx.env, settings, ctx.verbose, modelFacts(path)), sequences: parallel, generationOnly: true }),
    maxQueue: flags.maxQueue ?? DEFAULT_MAX_QUEUE,
    keepAliveMs,
    maxModels: flags.maxModels ?? DEFAULT_MAX_MODELS,
    onEvent: (event) => {
      // A model on the command line that cannot load stops serve with its error instead.
      if (event.type === "failed") {
        if (started) write(`lmrun serve: cannot load ${event.name}: ${event.message}\n`);
        return;
      }
      if (ctx.quiet) return;
      write(event.type === "loaded" ? `lmrun serve: loaded ${event.name} (${Math.round(event.ms)} ms)\n` : `lmrun serve: unloaded ${event.name} (${event.reason})\n`);
    },
  });
  const shutdown = new AbortController();
  const metrics = new Metrics(pool);
  const service = new Service({
    names,
    pool,
    metrics,
    // A seed given to serve applies to every request; otherwise each request draws its own.
    defaults: { sampling: { ...sampling, ...(flags.seed !== undefined ? { seed: drawnSeed } : {}) }, maxTokens },
    timeoutMs: flags.timeout ?? DEFAULT_TIMEOUT_MS,
    shutdown: shutdown.signal,
  });
  return {
    server: { service, metrics },
    description: "",
    async start(signal) {
      for (const model of commandLine) {
        if (signal.aborted) return;
        if (keepAliveMs === 0) {
          // Loaded now it would be unloaded at once: its header is checked instead, and each request loads it.
          await checkModelHeader(model);
          if (!ctx.quiet) write(`lmrun serve: ${model.name} loads for each request (--keep-alive 0)\n`);
        } else {
          await pool.preload(model);
        }
      }
      started = true;
    },
    abort: () => shutdown.abort(new Error("server shutting down")),
    close: () => pool.close(),
  };
}

/** The checks `run` makes before llama.cpp sees a file (magic, version, whole header, tensor data, vocabulary). */
async function checkModelHeader(model: ServableModel): Promise<void> {
  const { checkModelFile } = await import("../../engine/modelFile.js");
  await checkModelFile(model.path);
}

/**
 * A server streams many small objects (tokens, SSE chunks) and keeps few: V8 then doubles its young
 * generation up to its maximum (3 x 16 MB), which the process keeps. Not growing it kept serve's RSS
 * 25 MB lower under four streaming clients (296 -> 271 MB on the 135M model, three interleaved runs)
 * with the same throughput (186/179/207 vs 185/176/194 t/s). As a start-up flag V8 ignores a factor
 * of 1; set at run time it applies to every later growth decision.
 */
function keepYoungGenerationSmall(): void {
  v8.setFlagsFromString("--semi-space-growth-factor=1");
}

/** serve --rpc: the models run in a child process that a dead worker may take down; this process stays up. */
function modelProcessBackend(command: { args: string[]; env: NodeJS.ProcessEnv }, rpc: RpcLoadOptions, write: (line: string) => void): ServeBackend {
  const models = new ModelProcess({ command, rpc, write });
  return {
    server: { forwarder: models },
    description: `, run by a child process for the RPC worker${rpc.endpoints.length === 1 ? "" : "s"} ${rpc.endpoints.map((e) => e.address).join(",")}`,
    async start(signal) {
      // Ctrl-C while the child loads: stop it (once it listens, the child is stopped after the drain).
      const stop = (): void => void models.stop();
      signal.addEventListener("abort", stop, { once: true });
      try {
        await models.start();
      } catch (error) {
        if (!signal.aborted) throw error;
      } finally {
        signal.removeEventListener("abort", stop);
      }
    },
    // Connections cut by the server's drain end their forwarded requests in the child too.
    abort: () => undefined,
    close: () => models.stop(),
  };
}

/**
 * The child of `serve --rpc` stops (as on SIGTERM) when its parent's pipe on stdin closes: the parent
 * died. The pipe does not keep the process alive; the returned function stops watching.
 */
function stopWhenParentGoes(ctx: CommandContext): () => void {
  const stop = (): void => {
    unwatch();
    process.kill(process.pid, "SIGTERM");
  };
  const unwatch = (): void => {
    ctx.stdin.off("end", stop).off("close", stop).off("error", stop).pause();
  };
  ctx.stdin.on("end", stop).on("close", stop).on("error", stop).resume();
  (ctx.stdin as Partial<Socket>).unref?.();
  return unwatch;
}

/** --host/--port, else LMRUN_HOST (host:port, as OLLAMA_HOST), else 127.0.0.1:11488. */
function bindAddress(env: NodeJS.ProcessEnv, flags: ServeFlags): { host: string; port: number } {
  let fromEnv = { host: DEFAULT_SERVE_HOST, port: DEFAULT_SERVE_PORT };
  if (env.LMRUN_HOST) {
    try {
      fromEnv = parseHostSetting(env.LMRUN_HOST);
    } catch (error) {
      throw new UsageError(`LMRUN_HOST: ${(error as Error).message}`, "Use host:port, e.g. 127.0.0.1:11488");
    }
  }
  return { host: flags.host ?? fromEnv.host, port: flags.port ?? fromEnv.port };
}
