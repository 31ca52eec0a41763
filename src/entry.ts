import { main } from "./main.js";

/**
 * Process glue: signals, EPIPE and the exit code. Kept apart from main() so tests can call main directly.
 */
export async function runFromProcess(): Promise<void> {
  const controller = new AbortController();
  let stdoutClosed = false;
  let interrupts = 0;
  let echoExpected = false;
  process.on("SIGINT", () => {
    // conf's `when-exit` listens with process.once and re-sends the first SIGINT to the process.
    // Ours is registered first, so when it runs the other listener is still there: expect exactly
    // one echo and do not count it as a second Ctrl-C.
    if (echoExpected) {
      echoExpected = false;
      return;
    }
    interrupts++;
    if (interrupts > 1) {
      // A second Ctrl-C while something native refuses to stop: leave now.
      process.exit(130);
    }
    echoExpected = process.listenerCount("SIGINT") > 1;
    controller.abort(new Error("interrupted"));
  });
  process.on("SIGTERM", () => controller.abort(new Error("terminated")));
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED") {
      // The reader went away (| head): stop generating and end quietly.
      stdoutClosed = true;
      controller.abort(new Error("stdout closed"));
      return;
    }
    throw error;
  });
  const code = await main(process.argv.slice(2), {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: controller.signal,
    stdoutClosed: () => stdoutClosed,
  });
  process.exitCode = code;
}
