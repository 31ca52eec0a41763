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
