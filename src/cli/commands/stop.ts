import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerStop(program: Command, ctx: CommandContext): void {
  program
    .command("stop")
    .description("unload a model from a running lmrun server (the server keeps running)")
    .argument("<model>", "the model's name as `lmrun ps` shows it (or the file it was loaded from)")
    .option("--json", "print the outcome as JSON")
    .option("--server <url>", "the lmrun server to ask (default: the running one, LMRUN_HOST)")
    .action(async (model: string, flags: { json?: boolean; server?: string }) => {
      const { stopModel } = await import("../actions/serverModels.js");
      await stopModel(ctx, model, flags);
    });
}
