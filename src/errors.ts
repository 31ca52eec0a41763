/**
 * Errors that carry their own exit code and a hint on what to do next.
 * Domain code throws these; only main.ts turns them into output and exit codes.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  interrupted: 130,
  /** SIGTERM: the process dies of the signal, which a shell reports as 143 (128 + 15). */
  terminated: 143,
} as const;

export class LmrunError extends Error {
  readonly exitCode: number;
  /** A short "what to do" sentence appended to the message. */
  readonly hint: string | undefined;
  constructor(message: string, options: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.hint = options.hint;
  }
}

/** Bad flags, bad values, missing arguments: exit 2. */
export class UsageError extends LmrunError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.usage, ...(hint !== undefined ? { hint } : {}) });
  }
}

/** The user pressed Ctrl-C: exit 130. */
export class CancelledError extends LmrunError {
  constructor(message = "interrupted") {
    super(message, { exitCode: ExitCode.interrupted });
  }
}

/**
 * The reason a command's signal carries after SIGTERM. Unlike Ctrl-C, which lets a native step in
 * progress finish (a perplexity chunk, a long prompt), termination does not wait for it: jobs
 * report what they finished and the process dies while llama.cpp is still computing.
 */
export class TerminatedError extends LmrunError {
  constructor() {
    super("terminated", { exitCode: ExitCode.terminated });
  }
}

export function isTerminated(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && signal.reason instanceof TerminatedError;
}

/** What `unlessTerminated` resolves to when it stopped waiting. */
export const ABANDONED: unique symbol = Symbol("abandoned");

/**
 * Waits for a native step unless the process is being terminated: then resolves ABANDONED at
 * once and leaves the step running (its result is never used; the process is about to die).
 */
export function unlessTerminated<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABANDONED> {
  if (signal === undefined) return work;
  if (isTerminated(signal)) {
    work.catch(() => undefined);
    return Promise.resolve(ABANDONED);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      if (!isTerminated(signal)) return;
      work.catch(() => undefined);
      resolve(ABANDONED);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export function formatError(error: unknown): string {
  return oneLine(messageOf(error));
}

function messageOf(error: unknown): string {
  if (error instanceof LmrunError) {
    // A message that already ends a sentence gets no second full stop ('got "hell"..').
    return error.hint ? `${error.message}${/[.!?]$/.test(error.message) ? "" : "."} ${error.hint}` : error.message;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

/** An error is one line: control characters a message quotes (a file's first bytes, say) are shown escaped. */
function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof LmrunError) return error.exitCode;
  return ExitCode.failure;
}

/** Ends the command with this exit code and no message: what went wrong was already said (a child process's own output). */
export class SilentExit extends LmrunError {
  constructor(exitCode: number) {
    super("", { exitCode });
  }
}
