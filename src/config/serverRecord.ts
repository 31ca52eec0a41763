import fs from "node:fs";
import path from "node:path";
import { lmrunHome } from "./paths.js";

/**
 * The address record of a running `lmrun serve`, shared by the server (writes it at listen,
 * removes it on exit) and its clients (run/chat/ps/stop/batch find the server through it).
 *
 * It holds no secret: a client takes the API key from LMRUN_API_KEY. A record whose pid is dead
 * (a server killed with SIGKILL, a crash) is stale and ignored.
 *
 * This module is on the client path: it must import neither node-llama-cpp nor Ink.
 */
export interface ServerRecord {
  pid: number;
  /** Base URL clients use, e.g. http://127.0.0.1:11488 (no trailing slash). */
  url: string;
  host: string;
  port: number;
  /** ISO 8601. */
  startedAt: string;
  /** lmrun's package version of the server. */
  version: string;
}

/** Chosen to collide with none of ollama (11434), llama-server (8080) or LM Studio (1234). */
export const DEFAULT_SERVE_PORT = 11488;
export const DEFAULT_SERVE_HOST = "127.0.0.1";

export function serverRecordPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(lmrunHome(env), "server.json");
}

/** The URL a client uses for a host and port (IPv6 literals in brackets; a wildcard bind is reached on loopback). */
export function serverUrl(host: string, port: number): string {
  const reachable = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${reachable.includes(":") ? `[${reachable}]` : reachable}:${port}`;
}

export async function writeServerRecord(record: ServerRecord, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // Only the server writes its record: a client reading it does not load node:crypto for this (start-up).
  const { writeFileAtomic } = await import("../fs/atomicWrite.js");
  await writeFileAtomic(serverRecordPath(env), JSON.stringify(record, null, 2) + "\n", { mode: 0o644 });
}

/** Removes the record if it is still this process's (a newer server may have replaced it). */
export function removeServerRecord(pid: number = process.pid, env: NodeJS.ProcessEnv = process.env): void {
  const file = serverRecordPath(env);
  try {
    const record = parseServerRecord(fs.readFileSync(file, "utf8"));
    if (record === undefined || record.pid === pid) fs.rmSync(file, { force: true });
  } catch {
    // Absent or unreadable: nothing of ours to remove.
  }
}

/** The record, when present, well-formed and its process alive; undefined otherwise. */
export function readLiveServerRecord(env: NodeJS.ProcessEnv = process.env): ServerRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(serverRecordPath(env), "utf8");
  } catch {
    return undefined;
  }
  const record = parseServerRecord(text);
  if (record === undefined || !processAlive(record.pid)) return undefined;
  return record;
}

export function parseServerRecord(text: string): ServerRecord | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== "object" || data === null) return undefined;
  const r = data as Record<string, unknown>;
  if (!Number.isInteger(r.pid) || (r.pid as number) <= 0) return undefined;
  if (typeof r.url !== "string" || typeof r.host !== "string" || !Number.isInteger(r.port)) return undefined;
  return {
    pid: r.pid as number,
    url: r.url,
    host: r.host,
    port: r.port as number,
    startedAt: typeof r.startedAt === "string" ? r.startedAt : "",
    version: typeof r.version === "string" ? r.version : "",
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * LMRUN_HOST as OLLAMA_HOST reads: `host:port`, `host`, `:port`, `[v6]:port`, optionally with
 * http://. Missing parts take the defaults. Throws an Error naming the value when it is not one.
 */
export function parseHostSetting(value: string, defaults: { host: string; port: number } = { host: DEFAULT_SERVE_HOST, port: DEFAULT_SERVE_PORT }): { host: string; port: number } {
  let rest = value.trim().replace(/^https?:\/\//i, "").replace(/\/+$/, "");
  if (rest === "") return { ...defaults };
  let host = defaults.host;
  let portText: string | undefined;
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d*))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    host = rest; // a bare IPv6 address
  } else {
    const colon = rest.indexOf(":");
    if (colon >= 0) {
      portText = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
    if (rest !== "") host = rest;
  }
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) throw new Error(`"${value}" is not host:port`);
  let port = defaults.port;
  if (portText !== undefined && portText !== "") {
    if (!/^\d+$/.test(portText) || Number(portText) > 65535) throw new Error(`"${value}" has no valid port (0-65535)`);
    port = Number(portText);
  }
  return { host, port };
}
