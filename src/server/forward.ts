import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { HttpError } from "./http.js";

/**
 * A small reverse proxy (node:http only) for `serve --rpc`: the public server passes a request that
 * passed its checks to the `lmrun serve` child that runs the models, on 127.0.0.1 with the child's own
 * key, and pipes the answer back as it comes (SSE and NDJSON included). When the child goes away
 * mid-answer, the client gets an error in the API's shape instead of a hang: a plain HTTP error
 * before any output, an error event or line once a stream has started.
 */

export interface Upstream {
  port: number;
  apiKey: string;
  /** Why the upstream failed (the child died: which worker went away), once it is known. */
  failure(error: Error): Promise<HttpError>;
}

/** Hop-by-hop headers (RFC 9110, 7.6.1) and the ones the public server has answered for already. */
const DROPPED_REQUEST = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host", "authorization", "origin"]);
const DROPPED_RESPONSE = new Set(["connection", "keep-alive", "transfer-encoding", "trailer", "upgrade"]);

const agent = new http.Agent({ keepAlive: true });

function kept(headers: IncomingHttpHeaders, dropped: Set<string>): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !dropped.has(name)));
}

/**
 * Forwards one request. Resolves once the answer has ended (or the client went away); rejects with an
 * HttpError only while nothing was sent yet. `answered(true)` once the child has the request: its own
 * access-log line describes it from then on (499 included); `answered(false)` when the child died with it.
 */
export async function forwardRequest(req: IncomingMessage, res: ServerResponse, upstream: Upstream, answered: (forwarded: boolean) => void): Promise<void> {
  // The client left while the model process was starting.
  if (res.destroyed || res.writableEnded) return;
  const outgoing = http.request({
    host: "127.0.0.1",
    port: upstream.port,
    method: req.method,
    path: req.url,
    agent,
    headers: { ...kept(req.headers, DROPPED_REQUEST), authorization: `Bearer ${upstream.apiKey}` },
  });
  // The client went away: the child's request is aborted too, so its generation stops (it logs 499).
  let clientGone = false;
  res.on("close", () => {
    if (res.writableFinished) return;
    clientGone = true;
    outgoing.destroy();
  });
  outgoing.once("finish", () => answered(true));
  // Errors end the answer below (through the response, or the wait for it); none may go unheard.
  outgoing.on("error", () => undefined);
  req.on("error", () => outgoing.destroy());
  req.pipe(outgoing);
  let response: IncomingMessage;
  try {
    response = await new Promise<IncomingMessage>((resolve, reject) => {
      outgoing.once("response", resolve);
      outgoing.once("error", reject);
    });
  } catch (error) {
    if (clientGone) return;
    answered(false);
    throw await upstream.failure(error as Error);
  }
  res.writeHead(response.statusCode ?? 502, kept(response.headers, DROPPED_RESPONSE));
  res.flushHeaders();
  try {
    for await (const chunk of response) {
      if (!res.write(chunk)) await drained(res);
      if (clientGone) return;
    }
    // A response cut short may end without an error: `complete` says whether all of it came.
    if (!response.complete) throw new Error("the model process closed the connection mid-answer");
    res.end();
  } catch (error) {
    if (clientGone || res.destroyed) return;
    // The child's line for this request will never come: the public server logs it.
    answered(false);
    const failure = await upstream.failure(error as Error);
    endStreamWithError(res, String(response.headers["content-type"] ?? ""), failure);
  }
}

function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** The status line is out: the error goes in the stream's own format (as openai.ts and ollama.ts do), then the answer ends. */
function endStreamWithError(res: ServerResponse, contentType: string, error: HttpError): void {
  if (contentType.startsWith("text/event-stream")) {
    res.end(`data: ${JSON.stringify({ error: { message: error.message, type: error.details.type ?? "server_error", param: null, code: error.details.code ?? null } })}\n\n`);
  } else if (contentType.startsWith("application/x-ndjson")) {
    res.end(JSON.stringify({ error: error.message }) + "\n");
  } else {
    // A plain JSON answer half sent cannot be repaired: the client sees a cut connection.
    res.destroy();
  }
}
