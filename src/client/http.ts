import http from "node:http";
import type { Readable } from "node:stream";
import { ExitCode, LmrunError } from "../errors.js";
import type { StreamChunk } from "./wire.js";

/**
 * A small HTTP client for a running `lmrun serve` (ollama's wire API). node:http rather than fetch:
 * it loads faster (a warm `lmrun run` is mostly start-up) and says exactly how a connection failed.
 * Every failure becomes one LmrunError line that names the server and what to do.
 */

/** Nothing listens there (refused, unknown host): a caller that found the server by itself may run in-process instead. */
export class ServerUnreachableError extends LmrunError {}
/** 404 on a generation: the server does not serve this model (it never opens paths or downloads). */
export class ModelNotServedError extends LmrunError {}
/** 503: every slot and the queue are full. */
export class ServerBusyError extends LmrunError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    hint: string,
  ) {
    super(message, { hint });
  }
}

export interface ServerClientOptions {
  /** Sent as `Authorization: Bearer KEY` (LMRUN_API_KEY); never logged. */
  apiKey?: string | undefined;
  /** Bounds connecting and each wait for data, in ms (not the whole generation). */
  idleTimeoutMs?: number;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

export class ServerClient {
  readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly idleTimeoutMs: number;
  /** One keep-alive socket for every request of this process (batch sends many). */
  private readonly agent = new http.Agent({ keepAlive: true });

  constructor(url: string, options: ServerClientOptions = {}) {
    this.url = url.replace(/\/+$/, "");
    this.apiKey = options.apiKey !== undefined && options.apiKey !== "" ? options.apiKey : undefined;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 10 * 60_000;
  }

  /** GET or POST a JSON document and read a JSON answer. */
  async json<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.send(method, path, body, signal);
    const text = await readAll(response.body);
    if (response.status >= 400) throw this.errorFor(response.status, response.headers, text, path);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new LmrunError(`the server at ${this.url} answered ${path} with something that is not JSON`, { hint: "Is it an lmrun or ollama server?" });
    }
  }

  /**
   * POSTs a streaming request and hands each NDJSON object to onChunk; resolves with the final one
   * (done: true). An error line, or a stream that ends before its final object, is an error.
   */
  async stream(path: string, body: unknown, onChunk: (chunk: StreamChunk) => void, signal?: AbortSignal): Promise<StreamChunk> {
    const response = await this.send("POST", path, body, signal);
    if (response.status >= 400) throw this.errorFor(response.status, response.headers, await readAll(response.body), path);
    let buffered = "";
    let final: StreamChunk | undefined;
    const handleLine = (line: string) => {
      if (line.trim() === "") return;
      let chunk: StreamChunk;
      try {
        chunk = JSON.parse(line) as StreamChunk;
      } catch {
        throw new LmrunError(`the server at ${this.url} sent a line that is not JSON`, { hint: "Is it an lmrun or ollama server?" });
      }
      if (typeof chunk.error === "string") throw new LmrunError(`the server at ${this.url}: ${chunk.error}`);
      onChunk(chunk);
      if (chunk.done) final = chunk;
    };
    try {
      response.body.setEncoding("utf8");
      for await (const piece of response.body as AsyncIterable<string>) {
        buffered += piece;
        let newline: number;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          handleLine(line);
        }
      }
      handleLine(buffered);
    } catch (error) {
      if (error instanceof LmrunError || signal?.aborted) throw error;
      throw this.goneMidReply();
    }
    if (final === undefined) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      throw this.goneMidReply();
    }
    return final;
  }

  /** Releases the keep-alive socket so the process can exit. */
  close(): void {
    this.agent.destroy();
  }

  private goneMidReply(): LmrunError {
    return new LmrunError(`the server at ${this.url} closed the connection mid-reply (it stopped or crashed)`, {
      hint: "Check its log, start it again, or run in-process with --local",
    });
  }

  private send(method: string, path: string, body: unknown, signal?: AbortSignal, retried = false): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason ?? new Error("aborted"));
        return;
      }
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers: http.OutgoingHttpHeaders = { accept: "application/json, application/x-ndjson" };
      if (payload !== undefined) {
        headers["content-type"] = "application/json";
        headers["content-length"] = Buffer.byteLength(payload);
      }
      if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
      let target: URL;
      try {
        target = new URL(this.url + path);
      } catch {
        reject(new LmrunError(`"${this.url}" is not a server URL`, { exitCode: ExitCode.usage, hint: "Give one as http://HOST:PORT" }));
        return;
      }
      if (target.protocol !== "http:") {
        reject(new LmrunError(`${target.protocol} servers are not supported: ${this.url}`, { exitCode: ExitCode.usage, hint: "lmrun serve speaks plain http:// (put TLS in a proxy in front of it)" }));
        return;
      }
      let answered = false;
      const request = http.request(target, { method, headers, agent: this.agent, ...(signal ? { signal } : {}) });
      request.setTimeout(this.idleTimeoutMs, () => request.destroy(new Error("timeout")));
      request.on("response", (response) => {
        answered = true;
        // A stream that stalls this long means a server that hangs: fail rather than wait forever.
        response.setTimeout?.(this.idleTimeoutMs, () => response.destroy(new Error("timeout")));
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: response });
      });
      request.on("error", (error: NodeJS.ErrnoException) => {
        if (signal?.aborted) {
          reject(signal.reason ?? error);
          return;
        }
        // A kept-alive socket the server closed while idle (its keep-alive timeout) fails the next
        // request before any answer: that request never reached the server, so send it once more.
        if (!answered && !retried && request.reusedSocket && error.code === "ECONNRESET") {
          this.send(method, path, body, signal, true).then(resolve, reject);
          return;
        }
        reject(this.connectionError(error));
      });
      request.end(payload);
    });
  }

  private connectionError(error: NodeJS.ErrnoException): LmrunError {
    const code = error.code ?? "";
    if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EHOSTUNREACH" || code === "EADDRNOTAVAIL") {
      return new ServerUnreachableError(`no server answers at ${this.url} (${code})`, {
        hint: "Start one with `lmrun serve`, or run in-process with --local",
      });
    }
    if (error.message === "timeout") {
      return new LmrunError(`the server at ${this.url} did not answer for ${Math.round(this.idleTimeoutMs / 1000)} s`, { hint: "Check its log, or run in-process with --local" });
    }
    if (code === "ECONNRESET" || code === "EPIPE") return this.goneMidReply();
    return new LmrunError(`cannot reach the server at ${this.url}: ${error.message}`, { hint: "Run in-process with --local" });
  }

  /** An error status in ollama's ({"error": "..."}) or OpenAI's shape, as one line and an exit code. */
  errorFor(status: number, headers: http.IncomingHttpHeaders, text: string, path: string): LmrunError {
    const message = errorMessageOf(text) ?? `HTTP ${status}`;
    if (status === 401 || status === 403) {
      return new LmrunError(
        this.apiKey === undefined ? `the server at ${this.url} wants an API key` : `the server at ${this.url} refused the API key in LMRUN_API_KEY`,
        { hint: "Set LMRUN_API_KEY to the key it was started with" },
      );
    }
    if (status === 503) {
      const retryAfter = Number(headers["retry-after"]);
      const seconds = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : 1;
      return new ServerBusyError(`the server at ${this.url} is busy: ${message}`, seconds, `Retry in ${seconds} s, or run in-process with --local`);
    }
    if (status === 404 && (path === "/api/generate" || path === "/api/chat")) {
      return new ModelNotServedError(`the server at ${this.url} does not serve this model: ${message}`, { hint: "Pull it first, or run in-process with --local" });
    }
    // A request the server finds wrong (a prompt longer than the context, a bad schema) is the user's to fix.
    if (status === 400 || status === 413 || status === 422) return new LmrunError(message, { exitCode: ExitCode.usage });
    return new LmrunError(`the server at ${this.url} answered ${status}: ${message}`);
  }
}

function errorMessageOf(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === "string") return parsed.error;
    if (typeof parsed.error === "object" && parsed.error !== null && typeof (parsed.error as { message?: unknown }).message === "string") {
      return (parsed.error as { message: string }).message;
    }
  } catch {
    // not JSON: use the text itself below
  }
  const line = text.trim().split("\n")[0];
  return line !== undefined && line !== "" ? line.slice(0, 300) : undefined;
}

async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  } catch {
    // A body cut short: use what arrived.
  }
  return Buffer.concat(chunks).toString("utf8");
}
