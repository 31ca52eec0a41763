import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerRm(program: Command, ctx: CommandContext): void {
  program
    .command("rm")
    .description("delete models from the store, with what interrupted pulls of them left behind")
    .argument("<refs...>", "references as pulled (qwen2.5:0.5b, hf:USER/REPO/FILE.gguf…) or file names")
    .option("--json", "print what was deleted as JSON")
    .action(async (refs: string[], flags: { json?: boolean }) => {
      const { removeModels } = await import("../actions/store.js");
      await removeModels(ctx, refs, flags.json === true);
    });
}
