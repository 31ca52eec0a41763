import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { HttpError, sendJson } from "./http.js";
import type { Metrics } from "./metrics.js";
import * as anthropic from "./anthropic.js";
import * as llamaServer from "./llamaServer.js";
import * as ollama from "./ollama.js";
import * as openai from "./openai.js";
import * as responses from "./responses.js";
import { applyCors, hostAllowed, requestHasKey, isLoopbackHost, originAllowed, type SecurityOptions } from "./security.js";
import type { Service } from "./service.js";

/**
 * The HTTP server: node:http and a route table (SSE and NDJSON need the raw response anyway).
 * Every request passes the Host check, CORS and the API key first; every answer, error or not,
 * gets one access-log line.
 */

/**
 * `serve --rpc`: the models run in a child process (llama.cpp aborts the process that talks to a dead
 * RPC worker), and this server keeps the public socket, its checks and the log, and forwards every
 * request that passed them (forward.ts).
 */
export interface Forwarder {
  /** A model process is up (for /health). */
  ready(): boolean;
  /** `answered(true)`: the child's own access-log line describes this request; false: it will not come. */
  forward(req: IncomingMessage, res: ServerResponse, answered: (forwarded: boolean) => void): Promise<void>;
}

/** Where requests are answered: the models in this process, or a forwarder. */
export type ServerBackend = { service: Service; metrics: Metrics; forwarder?: undefined } | { forwarder: Forwarder; service?: undefined; metrics?: undefined };

export type ServerOptions = ServerBackend & {
  security: SecurityOptions;
  bodyLimit: number;
  pingMs: number;
  log: (entry: AccessEntry) => void;
};

export interface AccessEntry {
  time: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  model?: string | undefined;
  promptTokens?: number | undefined;
  generatedTokens?: number | undefined;
}

type Handler = (ctx: openai.AdapterContext, req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

const ROUTES: Record<string, Record<string, Handler>> = {
  "/v1/chat/completions": { POST: openai.chatCompletions },
  "/v1/completions": { POST: openai.completions },
  "/v1/responses": { POST: responses.responses },
  "/v1/messages": { POST: anthropic.messages },
  "/v1/messages/count_tokens": { POST: anthropic.countTokens },
  "/v1/embeddings": { POST: openai.embeddings },
  "/v1/models": { GET: (ctx, _req, res) => openai.listModels(ctx, res) },
  "/api/generate": { POST: ollama.generate },
  "/api/chat": { POST: ollama.chat },
  "/api/embed": { POST: (ctx, req, res) => ollama.embedEndpoint(ctx, req, res, false) },
  "/api/embeddings": { POST: (ctx, req, res) => ollama.embedEndpoint(ctx, req, res, true) },
  "/api/tags": { GET: (ctx, _req, res) => ollama.tags(ctx, res) },
  "/api/ps": { GET: (ctx, _req, res) => ollama.ps(ctx, res) },
  "/api/show": { POST: ollama.show },
  "/api/version": { GET: (_ctx, _req, res) => ollama.version(res) },
  "/infill": { POST: llamaServer.infill },
  "/tokenize": { POST: llamaServer.tokenize },
  "/detokenize": { POST: llamaServer.detokenize },
  "/tokenizer_info": { GET: llamaServer.tokenizerInfo },
};

/** llama-server's own endpoints: their errors in its shape (`{"error": {"code", "message", "type"}}`). */
const LLAMA_SERVER_PATHS = new Set(["/infill", "/tokenize", "/detokenize", "/tokenizer_info"]);

/** ollama's model-writing endpoints, refused whatever the method. */
const REFUSED = ["/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/blobs"];

export class LmrunServer {
  readonly http: http.Server;
  private inFlight = 0;
  private draining = false;
  private drained: Array<() => void> = [];

  constructor(private readonly options: ServerOptions) {
    this.http = http.createServer((req, res) => this.handle(req, res));
    // Long generations: the request timeout covers receiving the request only; answers may take minutes.
    this.http.requestTimeout = 120_000;
    this.http.headersTimeout = 60_000;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, host, () => {
        this.http.off("error", reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  get activeRequests(): number {
    return this.inFlight;
  }

  /** Stops accepting connections and resolves once no request is in flight or `graceMs` passed. */
  async drain(graceMs: number): Promise<boolean> {
    this.draining = true;
    this.http.close();
    this.http.closeIdleConnections();
    if (this.inFlight === 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), graceMs);
      this.drained.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  closeAllConnections(): void {
    this.http.closeAllConnections();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const startedAt = performance.now();
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const entry: AccessEntry = { time: new Date().toISOString(), method: req.method ?? "", path, status: 0, ms: 0 };
    this.inFlight++;
    let forwarded = false;
    res.on("close", () => {
      entry.status = res.writableFinished ? res.statusCode : 499;
      entry.ms = performance.now() - startedAt;
      this.options.metrics?.request(endpointLabel(path), entry.status, entry.ms / 1000);
      if (!forwarded) this.options.log(entry);
      this.inFlight--;
      if (this.inFlight === 0) for (const done of this.drained.splice(0)) done();
    });
    this.route(path, req, res, entry, (value) => (forwarded = value)).catch((error: unknown) => {
      const e = error instanceof HttpError ? error : new HttpError(500, `internal error: ${error instanceof Error ? error.message : String(error)}`, { type: "server_error" });
      if (res.destroyed) return;
      if (e.status === 499) {
        res.destroy();
        return;
      }
      if (path === "/v1/messages" || path.startsWith("/v1/messages/")) anthropic.anthropicError(res, e);
      else if (LLAMA_SERVER_PATHS.has(path)) llamaServer.llamaServerError(res, e);
      else if (path.startsWith("/v1/") || path === "/v1") openai.openAiError(res, e);
      else ollama.ollamaError(res, e);
    });
  }

  private async route(path: string, req: IncomingMessage, res: ServerResponse, entry: AccessEntry, answered: (forwarded: boolean) => void): Promise<void> {
    const options = this.options;
    const { security, forwarder } = options;
    if (!hostAllowed(req.headers.host, security)) {
      req.resume();
      throw new HttpError(403, `Host "${req.headers.host ?? ""}" is not allowed: this server answers ${isLoopbackHost(security.bindHost) ? "loopback names" : `loopback names, ${security.bindHost} and IP addresses`}${security.allowHosts.length > 0 ? ` and ${security.allowHosts.join(", ")}` : ""} (start it with --allow-host NAME to add one)`, {
        type: "permission_error",
        code: "host_not_allowed",
      });
    }
    if (!originAllowed(req.headers.origin, req.headers.host, security)) {
      req.resume();
      throw new HttpError(403, `Origin "${req.headers.origin}" is not allowed: web pages may use this server only if it was started with --cors ORIGIN`, {
        type: "permission_error",
        code: "origin_not_allowed",
      });
    }
    if (!applyCors(req, res, security)) return;
    if (path === "/health") {
      const status = this.draining ? "shutting down" : forwarder && !forwarder.ready() ? "no model process: the next request starts one" : "ok";
      sendJson(res, status === "ok" ? 200 : 503, { status });
      return;
    }
    if (security.apiKey !== undefined && !requestHasKey(req.headers, security.apiKey)) {
      req.resume();
      throw new HttpError(401, "a valid API key is required: send Authorization: Bearer KEY (or x-api-key: KEY)", {
        type: "authentication_error",
        code: "invalid_api_key",
        headers: { "www-authenticate": "Bearer" },
      });
    }
    if (this.draining) throw new HttpError(503, "the server is shutting down", { type: "server_busy", headers: { "retry-after": "5" } });
    if (options.forwarder) {
      await options.forwarder.forward(req, res, answered);
      return;
    }
    const ctx: openai.AdapterContext = {
      service: options.service,
      bodyLimit: this.options.bodyLimit,
      pingMs: this.options.pingMs,
      note: (fields) => Object.assign(entry, fields),
    };
    if (path === "/" && (req.method === "GET" || req.method === "HEAD")) {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(req.method === "HEAD" ? undefined : "lmrun is running\n");
      return;
    }
    if (path === "/metrics" && (req.method === "GET" || req.method === "HEAD")) {
      const { contentType, body } = await options.metrics.render();
      res.writeHead(200, { "content-type": contentType });
      res.end(body);
      return;
    }
    if (REFUSED.some((p) => path === p || path.startsWith(`${p}/`))) {
      req.resume();
      throw ollama.refused(path);
    }
    const modelPath = /^\/v1\/models\/(.+)$/.exec(path);
    if (modelPath && (req.method === "GET" || req.method === "HEAD")) {
      let name: string;
      try {
        name = decodeURIComponent(modelPath[1]!);
      } catch {
        throw new HttpError(404, `model ${JSON.stringify(modelPath[1])} not found: the id is not valid percent-encoding`, { type: "invalid_request_error", code: "model_not_found" });
      }
      const model = ctx.service.model(name, "model");
      const listed = ctx.service.options.names.list().find((m) => m.path === model.path);
      sendJson(res, 200, { id: model.name, object: "model", created: Math.floor(Date.parse(listed?.modifiedAt ?? "") / 1000) || 0, owned_by: "lmrun" });
      return;
    }
    const route = ROUTES[path];
    if (route === undefined) {
      req.resume();
      throw new HttpError(404, `no such endpoint: ${req.method} ${path}`, { type: "not_found_error" });
    }
    // HEAD is GET without the body (Node drops it), as ollama answers HEAD /api/tags.
    const handler = route[req.method ?? ""] ?? (req.method === "HEAD" ? route.GET : undefined);
    if (handler === undefined) {
      req.resume();
      throw new HttpError(405, `${path} takes ${Object.keys(route).join(", ")}, not ${req.method}`, { type: "invalid_request_error", headers: { allow: Object.keys(route).join(", ") } });
    }
    await handler(ctx, req, res);
  }
}

/** Metric labels: known endpoints by name, everything else as one label (no unbounded label values). */
function endpointLabel(path: string): string {
  if (ROUTES[path] !== undefined || path === "/health" || path === "/metrics" || path === "/") return path;
  if (path.startsWith("/v1/models/")) return "/v1/models/:id";
  return "other";
}

export function formatAccessEntry(entry: AccessEntry, format: "text" | "json"): string {
  if (format === "json") return JSON.stringify({ ...entry, ms: Math.round(entry.ms) }) + "\n";
  const tokens = entry.promptTokens !== undefined || entry.generatedTokens !== undefined ? ` tokens=${entry.promptTokens ?? 0}+${entry.generatedTokens ?? 0}` : "";
  return `${entry.time} ${entry.method} ${entry.path} ${entry.status}${entry.model !== undefined ? ` model=${JSON.stringify(entry.model)}` : ""}${tokens} ${Math.round(entry.ms)}ms\n`;
}
