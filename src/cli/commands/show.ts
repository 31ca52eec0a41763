import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerShow(program: Command, ctx: CommandContext): void {
  program
    .command("show")
    .description("describe a model: architecture, parameters, quant, context, template, licence, memory at several context sizes")
    .argument("<model>", "any model reference; a remote one has only its header read")
    .option("--template", "print only the chat template")
    .option("--json", "print everything as JSON")
    .action(async (model: string, flags: { json?: boolean; template?: boolean }) => {
      const { showModel } = await import("../actions/show.js");
      await showModel(ctx, model, { json: flags.json === true, template: flags.template === true });
    });
}
