import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerList(program: Command, ctx: CommandContext): void {
  program
    .command("ls")
    .alias("list")
    .description("list the models in the store: name, quant, size, modified")
    .option("--json", "print the models (and interrupted pulls) as JSON")
    .action(async (flags: { json?: boolean }) => {
      const { listModels } = await import("../actions/store.js");
      await listModels(ctx, flags.json === true);
    });
}
