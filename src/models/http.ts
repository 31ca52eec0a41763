import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import tls from "node:tls";

/**
 * A small HTTP client on node:http: raw streams (faster than fetch's web streams for big files),
 * no automatic redirects (Hugging Face puts the file's hash on the redirect), and
 * HTTPS_PROXY / HTTP_PROXY / NO_PROXY honoured (CONNECT tunnels for https).
 */
export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  url: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

export function proxyFor(url: URL, env: NodeJS.ProcessEnv): URL | undefined {
  const raw = url.protocol === "https:" ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.ALL_PROXY ?? env.all_proxy) : (env.HTTP_PROXY ?? env.http_proxy ?? env.ALL_PROXY ?? env.all_proxy);
  if (!raw) return undefined;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? "").split(/[\s,]+/).filter(Boolean);
  const host = url.hostname.toLowerCase();
  for (const entry of noProxy) {
    if (entry === "*") return undefined;
    const [name = "", port] = entry.toLowerCase().split(":");
    if (port !== undefined && port !== (url.port || (url.protocol === "https:" ? "443" : "80"))) continue;
    const bare = name.replace(/^\*?\./, "");
    if (host === bare || host.endsWith(`.${bare}`)) return undefined;
  }
  try {
    return new URL(raw.includes("://") ? raw : `http://${raw}`);
  } catch {
    return undefined;
  }
}

/** One request, no redirects followed. The body must be consumed or destroyed by the caller. */
export function rawRequest(target: string, options: RequestOptions = {}): Promise<RawResponse> {
  const url = new URL(target);
  const env = options.env ?? process.env;
  const proxy = proxyFor(url, env);
  const headers: Record<string, string> = { "user-agent": "lmrun", ...options.headers };
  return new Promise<RawResponse>((resolve, reject) => {
    if (options.signal?.aborted) return reject(abortError(options.signal));
    const onResponse = (response: IncomingMessage) => {
      options.signal?.removeEventListener("abort", onAbort);
      resolve({ status: response.statusCode ?? 0, headers: response.headers, body: response, url: target });
    };
    let request: http.ClientRequest | undefined;
    const onAbort = () => {
      const error = abortError(options.signal!);
      request?.destroy(error);
      reject(error);
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const method = options.method ?? "GET";
    if (proxy !== undefined && url.protocol === "http:") {
      // A plain-http proxy takes the absolute URL as the request path.
      request = http.request({ host: proxy.hostname, port: proxy.port || 80, method, path: url.href, headers: { ...headers, host: url.host, ...proxyAuth(proxy) } }, onResponse);
    } else if (proxy !== undefined) {
      const connect = http.request({ host: proxy.hostname, port: proxy.port || 80, method: "CONNECT", path: `${url.hostname}:${url.port || 443}`, headers: proxyAuth(proxy) });
      connect.on("connect", (response, socket: Duplex) => {
        if (response.statusCode !== 200) {
          socket.destroy();
          return reject(new Error(`the proxy ${proxy.host} refused to connect to ${url.host} (HTTP ${response.statusCode})`));
        }
        request = https.request(
          {
            host: url.hostname,
            method,
            path: url.pathname + url.search,
            headers,
            createConnection: () => tls.connect({ socket: socket as import("node:net").Socket, servername: url.hostname }),
          },
          onResponse,
        );
        request.on("error", reject);
        request.end();
      });
      connect.on("error", reject);
      connect.end();
      return;
    } else {
      const client = url.protocol === "https:" ? https : http;
      request = client.request(url, { method, headers }, onResponse);
    }
    request.on("error", reject);
    request.end();
  });
}

function proxyAuth(proxy: URL): Record<string, string> {
  if (!proxy.username) return {};
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { "proxy-authorization": `Basic ${Buffer.from(credentials).toString("base64")}` };
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("aborted");
}

/** Follows redirects and reads a small body: for API calls. */
export async function httpFetch(
  target: string,
  options: RequestOptions = {},
): Promise<{ status: number; ok: boolean; headers: IncomingHttpHeaders; text(): Promise<string>; json(): Promise<unknown> }> {
  let url = target;
  for (let hop = 0; hop < 6; hop++) {
    const response = await rawRequest(url, options);
    const location = header(response.headers, "location");
    if (response.status >= 300 && response.status < 400 && location) {
      response.body.resume();
      url = new URL(location, url).href;
      continue;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of response.body as AsyncIterable<Buffer>) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    return {
      status: response.status,
      ok: response.status >= 200 && response.status < 300,
      headers: response.headers,
      text: async () => text,
      json: async () => JSON.parse(text) as unknown,
    };
  }
  throw new Error(`too many redirects from ${target}`);
}
