/**
 * How SIGTERM ends this process (entry.ts). By default a command gets a moment to report what it
 * finished, then the process dies of the signal (exit 143). A command that shuts down gracefully on
 * SIGTERM (serve: in-flight requests finish) asks for a longer grace and reports that it handled the
 * signal, so that the process exits with the command's own code instead.
 */
const DEFAULT_GRACE_MS = 1500;
let graceMs = DEFAULT_GRACE_MS;
let handled = false;

export function terminationGraceMs(): number {
  return graceMs;
}

/** Lets SIGTERM wait up to `ms` for the command (never shortens it). */
export function extendTerminationGrace(ms: number): void {
  graceMs = Math.max(graceMs, ms);
}

/** The command has ended its work in answer to Ctrl-C or SIGTERM: exit with its code (a server's graceful stop: 0), not 130 or by the signal. */
export function markTerminationHandled(): void {
  handled = true;
}

export function terminationHandled(): boolean {
  return handled;
}

/**
 * Ends this process like SIGTERM when the package runner that started it (npx, npm exec, npm run)
 * dies. npm does not pass SIGTERM on to its child: `kill -TERM <npx's pid>` from a process manager or
 * a container stop left `npx lmrun serve` running, holding its port, with init as its parent
 * (measured with npm 11). The parent's death shows as a new parent id; checked twice a second.
 */
export function endWithPackageRunner(env: NodeJS.ProcessEnv = process.env, intervalMs = 500): void {
  if (env.npm_execpath === undefined || process.platform === "win32") return;
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, "SIGTERM");
  }, intervalMs);
  watch.unref();
}
