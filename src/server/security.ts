import crypto from "node:crypto";
import net from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * The server's gatekeeping, before any route runs: the API key, the Host header (DNS rebinding:
 * a web page must not reach a loopback server through a name it controls) and CORS.
 */

export interface SecurityOptions {
  apiKey: string | undefined;
  /** The host the server is bound to. */
  bindHost: string;
  /** Extra Host header names allowed (`*` = any). */
  allowHosts: string[];
  /** Origins allowed to call from a browser (`*` = any); none = no CORS headers at all. */
  corsOrigins: string[];
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "0:0:0:0:0:0:0:1";
}

/** Constant-time check of `Authorization: Bearer KEY` (hashing first makes the lengths equal). */
export function bearerMatches(header: string | undefined, key: string): boolean {
  return keyEquals(/^Bearer\s+(.+)$/i.exec(header?.trim() ?? "")?.[1]?.trim() ?? "", key);
}

/**
 * The request carries the API key: `Authorization: Bearer KEY`, or `x-api-key: KEY`, which Anthropic's
 * clients send instead (its SDKs with an API key, Claude Code with ANTHROPIC_API_KEY).
 */
export function requestHasKey(headers: { authorization?: string | undefined; "x-api-key"?: string | string[] | undefined }, key: string): boolean {
  const apiKeyHeader = headers["x-api-key"];
  const given = typeof apiKeyHeader === "string" ? apiKeyHeader.trim() : "";
  // Both are checked, so the time taken does not tell which header was tried.
  const viaApiKey = keyEquals(given, key);
  return bearerMatches(headers.authorization, key) || viaApiKey;
}

function keyEquals(given: string, key: string): boolean {
  const a = crypto.createHash("sha256").update(given).digest();
  const b = crypto.createHash("sha256").update(key).digest();
  return crypto.timingSafeEqual(a, b) && given.length > 0;
}

/** The Host header's name without its port. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === "") return undefined;
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (v6) return v6[1]!.toLowerCase();
  // An IPv6 literal without brackets (`::1`) has no port to strip.
  if (net.isIPv6(header)) return header.toLowerCase();
  return header.replace(/:\d+$/, "").toLowerCase();
}

/**
 * Whether the Host header names this server. A loopback-bound server answers only loopback names
 * (and --allow-host ones); a server bound to a network address also answers its bind address and
 * any IP literal (clients on the network use those), but not foreign DNS names.
 */
export function hostAllowed(header: string | undefined, options: SecurityOptions): boolean {
  if (options.allowHosts.includes("*")) return true;
  const name = hostName(header);
  if (name === undefined) return false;
  if (isLoopbackHost(name)) return true;
  if (options.allowHosts.some((h) => h.toLowerCase() === name)) return true;
  if (isLoopbackHost(options.bindHost)) return false;
  return name === options.bindHost.toLowerCase() || net.isIP(name) !== 0;
}

/**
 * Whether a request's Origin may use the server. Browsers send Origin on every cross-site POST, and
 * a page's no-cors fetch is carried out even though the page cannot read the answer: without this,
 * any web site could unload models or keep every slot busy on a server without a key (the Host check
 * passes, the page names 127.0.0.1). Non-browser clients send no Origin; a page can only use the
 * server if --cors names its origin (or it is the server's own).
 */
export function originAllowed(origin: string | undefined, host: string | undefined, options: SecurityOptions): boolean {
  if (origin === undefined) return true;
  if (options.corsOrigins.includes("*") || options.corsOrigins.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * CORS headers for an allowed Origin; false when the request is a preflight that was answered.
 * Without --cors nothing is added, so browsers keep other sites' pages out.
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, options: SecurityOptions): boolean {
  const origin = req.headers.origin;
  if (options.corsOrigins.length === 0) return true;
  // Answers differ by Origin: caches must key on it, for requests without one too.
  res.setHeader("vary", "Origin");
  if (origin === undefined) return true;
  const allowed = options.corsOrigins.includes("*") || options.corsOrigins.includes(origin);
  if (!allowed) return true;
  res.setHeader("access-control-allow-origin", options.corsOrigins.includes("*") ? "*" : origin);
  if (req.method === "OPTIONS") {
    res.writeHead(204, {
      "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
      "access-control-allow-headers": req.headers["access-control-request-headers"] ?? "authorization, content-type",
      "access-control-max-age": "600",
    });
    res.end();
    return false;
  }
  return true;
}
