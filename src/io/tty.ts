import fs from "node:fs";
import type { Readable } from "node:stream";

/**
 * What stdin is: a terminal, something that ends (a pipe, a socket, a file), or another device
 * (/dev/null, a serial line) that a command given its prompt as arguments must not wait on.
 * A stream without a descriptor (a test's) counts as a pipe.
 */
export function stdinKind(stdin: { isTTY?: boolean; fd?: unknown }): "terminal" | "pipe" | "device" {
  if (stdin.isTTY === true) return "terminal";
  if (typeof stdin.fd !== "number") return "pipe";
  try {
    const stat = fs.fstatSync(stdin.fd);
    return stat.isFIFO() || stat.isSocket() || stat.isFile() ? "pipe" : "device";
  } catch {
    return "device"; // closed
  }
}

/** Reads all of stdin when it is piped; returns undefined when stdin is a terminal. */
export async function readPipedStdin(stdin: Readable & { isTTY?: boolean }): Promise<string | undefined> {
  return (await readPipedStdinBytes(stdin))?.toString("utf8");
}

/** readPipedStdin's bytes, undecoded. */
export async function readPipedStdinBytes(stdin: Readable & { isTTY?: boolean }): Promise<Buffer | undefined> {
  if (stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

export function isInteractive(streams: { stdin: { isTTY?: boolean }; stdout: { isTTY?: boolean } }): boolean {
  return streams.stdin.isTTY === true && streams.stdout.isTTY === true;
}

/** Progress (spinners, bars) shows only on a terminal and never in CI. */
export function progressAllowed(stderr: { isTTY?: boolean }, env: NodeJS.ProcessEnv, quiet = false): boolean {
  if (quiet || stderr.isTTY !== true) return false;
  if (env.CI !== undefined && env.CI !== "" && env.CI !== "false" && env.CI !== "0") return false;
  return true;
}
