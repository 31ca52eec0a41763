import { Argument, Option, type Command } from "commander";
import type { CommandContext } from "../context.js";
import { UsageError } from "../../errors.js";

export function registerCompletion(program: Command, ctx: CommandContext): void {
  program
    .command("completion")
    .description("print a shell completion script: commands, flags and model names")
    .addArgument(new Argument("[shell]", "bash, zsh or fish").choices(["bash", "zsh", "fish"]))
    .addOption(new Option("--list-models", "the model names to complete, one a line (used by the scripts)").hideHelp())
    .action(async (shell: string | undefined, flags: { listModels?: boolean }) => {
      if (flags.listModels) {
        const { completionModelNames } = await import("../actions/completion.js");
        ctx.out.text((await completionModelNames(ctx.env)).map((name) => `${name}\n`).join(""));
        return;
      }
      const { completionScript, SHELLS } = await import("../shellCompletion.js");
      const chosen = SHELLS.find((s) => s === shell);
      if (chosen === undefined) {
        throw new UsageError(shell === undefined ? "which shell? (bash, zsh or fish)" : `no completion for ${JSON.stringify(shell)}: bash, zsh or fish`, "e.g. source <(lmrun completion bash)");
      }
      let root = program;
      while (root.parent) root = root.parent;
      ctx.stdout.write(completionScript(chosen, root));
    });
}
