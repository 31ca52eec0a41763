import { main } from "./main.js";

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
      // A second Ctrl-C while something native refuses to stop: leave now. Not process.exit(): it
      // first joins libuv's worker threads, i.e. waits for the very llama_decode being interrupted
      // (measured: 9 s for a perplexity chunk). Dying of SIGINT itself is what a shell expects (130).
      process.removeAllListeners("SIGINT");
      process.kill(process.pid, "SIGINT");
      setTimeout(() => process.exit(130), 1000).unref();
      return;
    }
    echoWindowEnds = now + 250;
    controller.abort(new Error("interrupted"));
    // Most work stops within milliseconds; a native step in progress (a perplexity chunk, a big prompt
    // batch) can take seconds. Say what is happening rather than look hung (a terminal only, not the chat's).
    setTimeout(() => {
      if (process.stderr.isTTY && process.stdin.isRaw !== true) {
        process.stderr.write("\nstopping: llama.cpp is finishing the step it is in (Ctrl-C again to quit at once)\n");
      }
    }, 1000).unref();
  });
  process.on("SIGTERM", () => controller.abort(new Error("terminated")));
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
}
