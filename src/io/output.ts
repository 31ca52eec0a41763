import type { Writable } from "node:stream";

/**
 * The only writer to the terminal outside the TUI.
 * stdout carries results only; everything else goes to stderr.
 */
export interface Output {
  /** Raw result text (streamed tokens, tables). */
  text(chunk: string): void;
  /** One JSON document on stdout. */
  json(value: unknown): void;
  /** A JSON line on stdout (streaming events). */
  jsonLine(value: unknown): void;
  /** Diagnostics on stderr, always shown (errors, warnings). */
  error(message: string): void;
  warn(message: string): void;
  /** Informational lines on stderr, shown only when stderr is a terminal and not --quiet. */
  info(message: string): void;
  /** Raw stderr write used by --verbose and --stats, shown regardless of TTY. */
  diag(message: string): void;
  readonly stderrIsTTY: boolean;
  readonly stdoutIsTTY: boolean;
  readonly color: boolean;
  /** Resolves when everything written to stdout has been flushed. */
  flush(): Promise<void>;
  readonly stdout: Writable;
  readonly stderr: Writable;
}

export interface OutputOptions {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  quiet?: boolean;
}

export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return stream.isTTY === true && env.TERM !== "dumb";
}

export function createOutput(options: OutputOptions): Output {
  const { stdout, stderr, env } = options;
  const stderrIsTTY = stderr.isTTY === true;
  const color = colorEnabled(stderr, env);
  const red = (s: string) => (color ? `\x1b[31m${s}\x1b[39m` : s);
  const yellow = (s: string) => (color ? `\x1b[33m${s}\x1b[39m` : s);
  const showInfo = stderrIsTTY && !options.quiet;
  return {
    text: (chunk) => {
      if (chunk.length > 0) stdout.write(chunk);
    },
    json: (value) => {
      stdout.write(JSON.stringify(value, null, 2) + "\n");
    },
    jsonLine: (value) => {
      stdout.write(JSON.stringify(value) + "\n");
    },
    error: (message) => {
      stderr.write(`${red("error:")} ${message}\n`);
    },
    warn: (message) => {
      stderr.write(`${yellow("warning:")} ${message}\n`);
    },
    info: (message) => {
      if (showInfo) stderr.write(message + "\n");
    },
    diag: (message) => {
      stderr.write(message.endsWith("\n") ? message : message + "\n");
    },
    stderrIsTTY,
    stdoutIsTTY: stdout.isTTY === true,
    color,
    flush: () =>
      new Promise<void>((resolve) => {
        // write("") calls back once earlier writes have been handed to the OS.
        if ((stdout as { destroyed?: boolean }).destroyed) return resolve();
        stdout.write("", () => resolve());
      }),
    stdout,
    stderr,
  };
}
