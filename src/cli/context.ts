import type { Readable, Writable } from "node:stream";
import type { Output } from "../io/output.js";

/** Everything a command needs from the outside world; injected so commands are testable. */
export interface CommandContext {
  out: Output;
  env: NodeJS.ProcessEnv;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: Writable & { isTTY?: boolean };
  /** Aborted on Ctrl-C (SIGINT) or when stdout closes. */
  signal: AbortSignal;
  /** Set by main from the global flags before a command runs. */
  verbose: boolean;
  quiet: boolean;
  /** Set when stdout was closed by the reader (EPIPE): the command should stop quietly. */
  readonly stdoutClosed: () => boolean;
}
