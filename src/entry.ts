import { TerminatedError } from "./errors.js";
import { main } from "./main.js";
import { endWithPackageRunner, terminationGraceMs, terminationHandled } from "./termination.js";

/**
 * Ends the process by the signal itself, at once. Not process.exit(): it first joins libuv's worker
 * threads, i.e. waits for a llama_decode in progress (measured: 9 s for a perplexity chunk, minutes
 * for a long one). Dying of the signal is also what a shell expects ($? = 128 + its number).
 */
function dieOf(signal: "SIGINT" | "SIGTERM"): void {
  // Dying of a signal skips "exit" listeners, which undo what must not outlive the process (serve's
  // address record and model child, the terminal's raw mode): run them first.
  try {
    process.emit("exit", signal === "SIGINT" ? 130 : 143);
  } catch {
    // leaving regardless
  }
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  setTimeout(() => process.exit(signal === "SIGINT" ? 130 : 143), 1000).unref();
}

/**
 * Process glue: signals, EPIPE and the exit code. Kept apart from main() so tests can call main directly.
 */
export async function runFromProcess(): Promise<void> {
  const controller = new AbortController();
  let stdoutClosed = false;
  let interrupts = 0;
  let echoWindowEnds = 0;
  let stdoutFailed = false;
  process.on("SIGINT", () => {
    // Some listeners that libraries add (conf's `when-exit`) re-send the first SIGINT to the process;
    // others (ora's `signal-exit`) do not, so whether an echo comes cannot be known. One that comes
    // within a moment of the first Ctrl-C is that echo, not a second Ctrl-C.
    const now = Date.now();
    if (interrupts === 1 && now < echoWindowEnds) {
      echoWindowEnds = 0;
      return;
    }
    interrupts++;
    if (interrupts > 1) {
      // A second Ctrl-C while something native refuses to stop: leave now.
      dieOf("SIGINT");
      return;
    }
    echoWindowEnds = now + 250;
    controller.abort(new Error("interrupted"));
    // Most work stops within milliseconds; a native step in progress (a perplexity chunk, a big prompt
    // batch) can take seconds. Say what is happening rather than look hung (on a terminal, not in the
    // chat's screen; with --verbose in a pipe too).
    setTimeout(() => {
      if ((process.stderr.isTTY || process.argv.includes("--verbose")) && process.stdin.isRaw !== true) {
        process.stderr.write("\nstopping: llama.cpp is finishing the step it is in (Ctrl-C again to quit at once)\n");
      }
    }, 1000).unref();
  });
  let terminated = false;
  let terminationDeadline: NodeJS.Timeout | undefined;
  process.on("SIGTERM", () => {
    if (terminated) return;
    terminated = true;
    // Jobs stop without waiting for the native step they are in and report what they finished
    // (errors.ts, unlessTerminated); whatever still holds them after the grace period is cut short.
    controller.abort(new TerminatedError());
    terminationDeadline = setTimeout(() => dieOf("SIGTERM"), terminationGraceMs());
  });
  endWithPackageRunner();
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED") {
      // The reader went away (| head): stop generating and end quietly.
      stdoutClosed = true;
      controller.abort(new Error("stdout closed"));
      return;
    }
    // Results that cannot be written (a full disk: > /dev/full, EIO): one line, stop, exit 1.
    if (!stdoutFailed) {
      stdoutFailed = true;
      process.stderr.write(`error: cannot write the output: ${error.message}\n`);
    }
    stdoutClosed = true;
    process.exitCode = 1;
    controller.abort(new Error("stdout failed"));
  });
  const code = await main(process.argv.slice(2), {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: controller.signal,
    stdoutClosed: () => stdoutClosed,
  });
  process.exitCode = stdoutFailed ? 1 : code;
  // Terminated: what was finished is written (stdout and stderr are synchronous here, files and
  // pipes alike); do not wait for llama.cpp's threads on the way out.
  if (terminated && !terminationHandled()) dieOf("SIGTERM");
  // A command that ended its work in answer to SIGTERM (serve) exits with its own code, now.
  if (terminated) clearTimeout(terminationDeadline);
}
