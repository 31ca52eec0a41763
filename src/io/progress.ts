import { progressAllowed } from "./tty.js";

/** A status line on stderr; a no-op when stderr is not a terminal, in CI, with --json or --quiet. */
export interface Spinner {
  update(text: string): void;
  succeed(text?: string): void;
  stop(): void;
}

const silent: Spinner = { update: () => {}, succeed: () => {}, stop: () => {} };

export async function startSpinner(
  text: string,
  options: { stderr: NodeJS.WritableStream & { isTTY?: boolean }; env: NodeJS.ProcessEnv; quiet?: boolean },
): Promise<Spinner> {
  if (!progressAllowed(options.stderr, options.env, options.quiet)) return silent;
  // A pseudo-terminal with no size (columns 0) makes ora erase "infinitely many" lines on every frame.
  if ((options.stderr as { columns?: number }).columns === 0) return silent;
  const { default: ora } = await import("ora");
  const spinner = ora({ text, stream: options.stderr, discardStdin: false }).start();
  let stopped = false;
  return {
    update: (next) => {
      if (!stopped) spinner.text = next;
    },
    succeed: (final) => {
      if (stopped) return;
      stopped = true;
      // Leave no line behind unless there is something worth keeping.
      if (final) spinner.succeed(final);
      else spinner.stop();
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      spinner.stop();
    },
  };
}
