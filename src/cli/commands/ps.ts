import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerPs(program: Command, ctx: CommandContext): void {
  program
    .command("ps")
    .description("list the models a running lmrun server holds in memory (as `ollama ps`)")
    .option("--json", "print the loaded models as JSON")
    .option("--server <url>", "the lmrun server to ask (default: the running one, LMRUN_HOST)")
    .action(async (flags: { json?: boolean; server?: string }) => {
      const { listLoaded } = await import("../actions/serverModels.js");
      await listLoaded(ctx, flags);
    });
}
