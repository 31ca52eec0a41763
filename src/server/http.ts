import crypto from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * The small HTTP layer the API adapters share: JSON bodies with a size cap, errors as values with
 * a status, and streamed writes that respect backpressure and notice a client that went away.
 */

/** An answer other than 2xx; each API renders it in its own error shape. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: { param?: string | undefined; code?: string | undefined; type?: string | undefined; headers?: Record<string, string> | undefined } = {},
  ) {
    super(message);
  }
}

/** An id for an API object: the prefix, then `bytes` random bytes in hex (`chatcmpl-…`, `call_…`, `msg_…`). */
export function randomId(prefix: string, bytes = 12, separator = "_"): string {
  return `${prefix}${separator}${crypto.randomBytes(bytes).toString("hex")}`;
}

export function badRequest(message: string, param?: string): HttpError {
  return new HttpError(400, message, { param, type: "invalid_request_error" });
}

/** Reads and parses a JSON object body, refusing one past `limitBytes` (413) or not JSON (400). */
export async function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers["content-length"]);
  // A 413 closes the connection: reading on (to keep it alive) would take in whatever the client sends.
  if (Number.isFinite(declared) && declared > limitBytes) {
    throw new HttpError(413, `the request body is ${declared} bytes; the limit is ${limitBytes}`, { type: "invalid_request_error", code: "body_too_large", headers: { connection: "close" } });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limitBytes) {
      throw new HttpError(413, `the request body is larger than the limit of ${limitBytes} bytes`, { type: "invalid_request_error", code: "body_too_large", headers: { connection: "close" } });
    }
    chunks.push(chunk as Buffer);
  }
  // A byte-order mark (some Windows tools write one) is not part of the JSON.
  const text = Buffer.concat(chunks).toString("utf8").replace(/^\uFEFF/, "");
  if (text.trim() === "") throw badRequest("the request body is empty; a JSON object is expected");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw badRequest(`the request body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw badRequest("the request body must be a JSON object");
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The client closed the connection before the answer ended (watch the response, not the request). */
export function onClientGone(res: ServerResponse, handler: () => void): void {
  res.on("close", () => {
    if (!res.writableFinished) handler();
  });
}

/** Aborted when the client closes the connection before its answer is written. */
export function clientGone(res: ServerResponse): AbortSignal {
  const client = new AbortController();
  onClientGone(res, () => client.abort());
  return client.signal;
}

/**
 * A streamed answer (SSE or NDJSON): headers go out with the first write, or with `ping` while a
 * request still waits (so an error before any output is still a plain HTTP error). Writes wait
 * for 'drain' when the socket's buffer is full.
 */
export class StreamWriter {
  private started = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly res: ServerResponse,
    private readonly contentType: string,
    private readonly extraHeaders: Record<string, string> = {},
  ) {}

  get headersSent(): boolean {
    return this.started;
  }

  start(): void {
    if (this.started || this.res.destroyed) return;
    this.started = true;
    this.res.writeHead(200, { "content-type": this.contentType, "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no", ...this.extraHeaders });
    this.res.flushHeaders();
  }

  async write(text: string): Promise<void> {
    this.start();
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.res.write(text)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.res.off("drain", done);
          this.res.off("close", done);
          resolve();
        };
        this.res.on("drain", done);
        this.res.on("close", done);
      });
    }
  }

  end(): void {
    this.start();
    if (!this.res.writableEnded) this.res.end();
  }

  /** Writes in the order sent, without waiting: each write waits for the one before it (and for 'drain'). */
  send(text: string): void {
    this.queue = this.queue.then(() => this.write(text));
  }

  /** Everything sent so far has been written. */
  flushed(): Promise<void> {
    return this.queue;
  }

  /** Ends the answer once everything sent is written. */
  async finish(): Promise<void> {
    await this.queue;
    this.end();
  }

  /** Sends `text` every `ms` (keep-alives while a request waits, so no proxy or client times out) until the returned function is called. */
  keepAlive(text: string, ms: number): () => void {
    const timer = setInterval(() => this.send(text), ms);
    return () => clearInterval(timer);
  }
}

/**
 * A streamed answer's life: keep-alives while the job waits for a slot, `conclude` with its result (the
 * last events, after the keep-alives stop), then the end. An error before any output is thrown (a plain
 * HTTP error); after the headers it is the API's own last event (`failure`), and the stream ends.
 */
export async function streamAnswer<T>(
  writer: StreamWriter,
  keepAlive: { text: string; ms: number } | undefined,
  produce: () => Promise<T>,
  conclude: (value: T) => void,
  failure: (error: HttpError) => string,
): Promise<void> {
  const stopPings = keepAlive ? writer.keepAlive(keepAlive.text, keepAlive.ms) : () => {};
  try {
    const value = await produce();
    stopPings();
    conclude(value);
    await writer.finish();
  } catch (error) {
    stopPings();
    await writer.flushed();
    if (!writer.headersSent) throw error;
    writer.send(failure(error instanceof HttpError ? error : new HttpError(500, error instanceof Error ? error.message : String(error))));
    await writer.finish();
  }
}
