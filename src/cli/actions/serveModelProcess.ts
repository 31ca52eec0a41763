import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import readline from "node:readline";
import type { RpcLoadOptions } from "../../engine/types.js";
import { LmrunError } from "../../errors.js";
import { forwardRequest } from "../../server/forward.js";
import { HttpError } from "../../server/http.js";
import type { Forwarder } from "../../server/server.js";
import { explainChildDeath, rpcAbortText } from "../rpcChild.js";

/**
 * `serve --rpc`: llama.cpp aborts the process whose RPC client meets a dead worker, so the models run
 * in a child `lmrun serve` (the same arguments, on 127.0.0.1, any free port, with a random key that
 * travels in its environment) and this process, the public server, forwards requests to it. When the
 * child dies, requests in flight end with an error naming the worker, one line says so on stderr, and
 * the next request starts a new child (whose pre-flight names a worker that is still gone).
 */

/** The child's API key; set only in a child that a `serve --rpc` process started. */
export const SERVE_CHILD_KEY_ENV = "LMRUN_SERVE_CHILD_KEY";

/** How long a request whose child connection broke waits for the child's exit, to say why. */
const DEATH_WAIT_MS = 10_000;
/** SIGTERM lets the child drain; past this it is killed. */
const STOP_WAIT_MS = 10_000;

interface Running {
  child: ChildProcess;
  /** The child's port once it listens. */
  port: number | undefined;
  /** Settles once the child has exited: why it went away (a stop asked for resolves too). */
  gone: Promise<LmrunError>;
}

export interface ModelProcessOptions {
  /** The arguments and environment that run this command again as the RPC child (rpcChildCommand). */
  command: { args: string[]; env: NodeJS.ProcessEnv };
  rpc: RpcLoadOptions;
  /** stderr: the child's own lines (access log, loads) pass through. */
  write(text: string): void;
}

export class ModelProcess implements Forwarder {
  /** The child, from its spawn until it has exited. */
  private running: Running | undefined;
  private starting: Promise<Running> | undefined;
  private stopping = false;
  private readonly apiKey = crypto.randomBytes(24).toString("hex");

  constructor(private readonly options: ModelProcessOptions) {}

  ready(): boolean {
    return this.running?.port !== undefined;
  }

  /** Starts the child (once, for callers at the same time) and resolves when it listens; rejects with its own error line. */
  start(): Promise<Running> {
    if (this.running?.port !== undefined) return Promise.resolve(this.running);
    this.starting ??= this.spawnChild().finally(() => (this.starting = undefined));
    return this.starting;
  }

  async forward(req: IncomingMessage, res: ServerResponse, answered: (forwarded: boolean) => void): Promise<void> {
    let running: Running;
    try {
      running = await this.start();
    } catch (error) {
      req.resume();
      const message = (error as Error).message;
      this.options.write(`lmrun serve: cannot start the model process: ${message}\n`);
      throw new HttpError(503, message, { type: "server_busy", code: "rpc_worker_unavailable", headers: { "retry-after": "5" } });
    }
    await forwardRequest(req, res, { port: running.port!, apiKey: this.apiKey, failure: (error) => this.failure(running, error) }, answered);
  }

  /** Stops the child: SIGTERM (it drains as serve does), SIGKILL if it is still there after STOP_WAIT_MS. */
  async stop(): Promise<void> {
    this.stopping = true;
    const running = this.running;
    if (!running) return;
    const { child } = running;
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_WAIT_MS);
    await running.gone;
    clearTimeout(timer);
  }

  private async failure(running: Running, error: Error): Promise<HttpError> {
    let timer: NodeJS.Timeout | undefined;
    const why = await Promise.race([running.gone, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), DEATH_WAIT_MS)))]);
    clearTimeout(timer);
    if (why === undefined) return new HttpError(502, `the model process did not answer: ${error.message}`, { type: "server_error" });
    return new HttpError(502, why.message, { type: "server_error", code: "rpc_worker_lost" });
  }

  private spawnChild(): Promise<Running> {
    const { command, rpc, write } = this.options;
    if (this.stopping) return Promise.reject(new LmrunError("the server is shutting down"));
    // Its own process group: a Ctrl-C in the terminal reaches this process only, which drains first and
    // then stops the child. Its stdin is a pipe from here: when this process dies, the child sees the
    // pipe close and stops too (serve.ts).
    const child = spawn(process.execPath, [...command.args, "--host", "127.0.0.1", "--port", "0"], {
      env: { ...command.env, [SERVE_CHILD_KEY_ENV]: this.apiKey },
      stdio: ["pipe", "inherit", "pipe"],
      detached: true,
    });
    const killOnExit = (): void => void child.kill("SIGKILL");
    process.on("exit", killOnExit);
    const running: Running = { child, port: undefined, gone: undefined as unknown as Promise<LmrunError> };
    this.running = running;
    let abortLine: string | undefined;
    let errorLine: string | undefined;
    return new Promise<Running>((resolve, reject) => {
      readline.createInterface({ input: child.stderr! }).on("line", (line) => {
        // llama.cpp's abort, and what follows it: summarised when the child is gone.
        if (abortLine !== undefined) return;
        abortLine = rpcAbortText(line);
        if (abortLine !== undefined) return;
        const listening = /^lmrun serve: listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (listening && running.port === undefined) {
          running.port = Number(listening[1]);
          resolve(running);
          return;
        }
        if (line.startsWith("error: ")) {
          errorLine = line.slice("error: ".length);
          // Before it listens, the child's error is why it could not start: the caller reports it.
          if (running.port === undefined) return;
        }
        write(`${line}\n`);
      });
      running.gone = new Promise<[number | null, NodeJS.Signals | null]>((settle) => child.once("close", (code, signal) => settle([code, signal]))).then(async ([code, signal]) => {
        process.off("exit", killOnExit);
        child.stdin?.destroy();
        if (this.running === running) this.running = undefined;
        const listened = running.port !== undefined;
        const why =
          abortLine !== undefined || (code === null && !this.stopping) ? await explainChildDeath(rpc, signal, abortLine)
          : new LmrunError(errorLine ?? (this.stopping ? "the server is shutting down" : `the model process exited with code ${code}`));
        if (!listened) reject(why);
        else if (!this.stopping) write(`lmrun serve: ${why.message}. The next request starts the model process again\n`);
        return why;
      });
    });
  }
}
