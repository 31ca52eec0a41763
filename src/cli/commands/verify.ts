import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerVerify(program: Command, ctx: CommandContext): void {
  program
    .command("verify")
    .description("re-hash model files against the manifest and name each corrupt one (exit 1)")
    .argument("[refs...]", "models to check (default: every model in the store)")
    .option("--json", "print each file's outcome as JSON")
    .action(async (refs: string[], flags: { json?: boolean }) => {
      const { verifyModels } = await import("../actions/store.js");
      await verifyModels(ctx, refs, flags.json === true);
    });
}
