import { parseHostSetting, readLiveServerRecord, serverUrl } from "../config/serverRecord.js";
import { UsageError } from "../errors.js";

/**
 * Which running server a client command talks to, if any:
 *   --local            none: in-process, as before servers existed
 *   --server URL       that one (an error if it does not answer)
 *   LMRUN_HOST         that one, as OLLAMA_HOST for ollama's CLI
 *   LMRUN_HOME/server.json   the server `lmrun serve` recorded (a record whose process is dead is ignored)
 * A server found by itself (the last two) that does not answer is skipped: the command runs in-process.
 */
export interface ServerTarget {
  url: string;
  /** "flag": asked for, so failing to reach it is an error; otherwise a fallback to in-process is allowed. */
  source: "flag" | "env" | "record";
}

export interface TargetFlags {
  local?: boolean;
  server?: string;
}

export function chooseServer(flags: TargetFlags, env: NodeJS.ProcessEnv): ServerTarget | undefined {
  if (flags.local === true && flags.server !== undefined) throw new UsageError("give --local or --server, not both");
  if (flags.local === true) return undefined;
  if (flags.server !== undefined) return { url: normaliseServerUrl(flags.server, "--server"), source: "flag" };
  const host = env.LMRUN_HOST;
  if (host !== undefined && host.trim() !== "") return { url: normaliseServerUrl(host, "LMRUN_HOST"), source: "env" };
  const record = readLiveServerRecord(env);
  if (record !== undefined) return { url: record.url.replace(/\/+$/, ""), source: "record" };
  return undefined;
}

/** A server that must exist (ps, stop): the flag, LMRUN_HOST or the record, else one clear error. */
export function requireServer(flags: { server?: string }, env: NodeJS.ProcessEnv): ServerTarget {
  const target = chooseServer({ server: flags.server }, env);
  if (target === undefined) {
    throw new UsageError("no lmrun server is running (none recorded in LMRUN_HOME, LMRUN_HOST unset)", "Start one with `lmrun serve`, or name one with --server URL");
  }
  return target;
}

/** `http://h:p`, `h:p`, `:p` or `h` (as LMRUN_HOST) to a base URL without a trailing slash. */
export function normaliseServerUrl(value: string, what: string): string {
  const trimmed = value.trim();
  if (/^https:\/\//i.test(trimmed)) throw new UsageError(`${what} "${value}": https is not supported`, "lmrun serve speaks plain http://; put TLS in a proxy in front of it");
  try {
    const { host, port } = parseHostSetting(trimmed.replace(/^http:\/\//i, "").replace(/\/.*$/, ""));
    return serverUrl(host, port);
  } catch (error) {
    throw new UsageError(`${what}: ${(error as Error).message}`, "Give it as http://HOST:PORT or HOST:PORT");
  }
}

/** LMRUN_API_KEY, sent as a bearer token (never printed). */
export function apiKeyFrom(env: NodeJS.ProcessEnv): string | undefined {
  const key = env.LMRUN_API_KEY;
  return key !== undefined && key !== "" ? key : undefined;
}
