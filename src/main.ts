import type { CommandContext } from "./cli/context.js";
import { ExitCode, exitCodeOf, formatError, isTerminated, SilentExit } from "./errors.js";
import { createOutput } from "./io/output.js";
import { terminationHandled } from "./termination.js";

export interface MainIo {
  stdin: CommandContext["stdin"];
  stdout: CommandContext["stdout"];
  stderr: CommandContext["stderr"];
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  stdoutClosed: () => boolean;
}

/**
 * Parses argv, runs one command and returns the exit code. The only place that maps errors to
 * messages and codes; it never calls process.exit.
 */
export async function main(argv: string[], io: MainIo): Promise<number> {
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    // The most common probe of a CLI: answer it without building eleven commands.
    const { packageVersion } = await import("./cli/version.js");
    io.stdout.write(`${packageVersion()}\n`);
    return ExitCode.ok;
  }
  const verboseRequested = argv.includes("--verbose");
  const out = createOutput({ stdout: io.stdout, stderr: io.stderr, env: io.env, quiet: argv.includes("--quiet") || argv.includes("-q") });
  const ctx: CommandContext = {
    out,
    env: io.env,
    stdin: io.stdin,
    stdout: io.stdout,
    stderr: io.stderr,
    signal: io.signal,
    verbose: verboseRequested,
    quiet: false,
    stdoutClosed: io.stdoutClosed,
  };
  const { onEngineNotice } = await import("./engine/notices.js");
  onEngineNotice((notice) => (notice.level === "warn" ? out.warn(notice.message) : out.info(notice.message)));
  if (verboseRequested) {
    // llama.cpp's own log lines go to stderr only when asked for.
    const { setLlamaLogSink } = await import("./engine/llama.js");
    setLlamaLogSink({ verbose: true, write: (line) => io.stderr.write(line) });
  }
  const { programFor } = await import("./cli/programFor.js");
  const program = await programFor(ctx, argv);
  program.exitOverride();
  program.configureOutput({
    writeOut: (s) => io.stdout.write(s),
    writeErr: (s) => io.stderr.write(s),
    outputError: (message, write) => write(`${oneLine(message)}\n`),
  });
  for (const sub of program.commands) {
    sub.exitOverride();
    sub.configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (message, write) => write(`${oneLine(message)} (see: lmrun ${sub.name()} --help)\n`),
    });
    for (const nested of sub.commands) nested.exitOverride();
  }
  try {
    if (argv.length === 0) {
      // Help shown for a usage error goes to stderr: stdout carries only what was asked for.
      program.outputHelp({ error: true });
      return ExitCode.usage;
    }
    await program.parseAsync(argv, { from: "user" });
    if (io.signal.aborted && !io.stdoutClosed() && !terminationHandled()) return abortCode(io.signal);
    return ExitCode.ok;
  } catch (error) {
    if (isCommanderError(error)) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return ExitCode.ok;
      // Help shown because something was missing (`lmrun config` with no subcommand) is a usage error.
      if (error.code === "commander.help") return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return ExitCode.usage;
    }
    if (error instanceof SilentExit) return error.exitCode;
    if (io.stdoutClosed()) return ExitCode.ok;
    if (io.signal.aborted) return abortCode(io.signal);
    out.error(formatError(error));
    if (ctx.verbose && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    return exitCodeOf(error);
  }
}

function abortCode(signal: AbortSignal): number {
  return isTerminated(signal) ? ExitCode.terminated : ExitCode.interrupted;
}

/** Commander puts "(Did you mean --temp?)" on a line of its own: errors are one line. */
function oneLine(message: string): string {
  return message.trimEnd().replace(/\s*\n\s*/g, " ");
}

/** Commander's own errors (help shown, bad flag) carry a "commander.*" code; it is not imported for --version. */
function isCommanderError(error: unknown): error is { code: string; exitCode: number } {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("commander.");
}
