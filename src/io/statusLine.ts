import type { CommandContext } from "../cli/context.js";
import { progressAllowed } from "./tty.js";

/** A single status line on stderr, redrawn in place; no timer, so it costs nothing while a test is timed. */
export function statusLine(ctx: Pick<CommandContext, "stderr" | "env" | "quiet">): { show(text: string): void; clear(): void } {
  if (!progressAllowed(ctx.stderr, ctx.env, ctx.quiet)) return { show: () => {}, clear: () => {} };
  let shown = false;
  return {
    show: (text) => {
      ctx.stderr.write(`\r\x1b[2K${text}`);
      shown = true;
    },
    clear: () => {
      if (shown) ctx.stderr.write("\r\x1b[2K");
      shown = false;
    },
  };
}
