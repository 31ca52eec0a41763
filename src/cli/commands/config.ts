import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerConfig(program: Command, ctx: CommandContext): void {
  const config = program.command("config").description("read and change settings: models dir, default model, sampling, threads");
  config
    .command("list")
    .description("every setting with its value")
    .option("--json", "print as JSON")
    .action(async (flags: { json?: boolean }) => (await logic()).configList(ctx, flags.json === true));
  config
    .command("get")
    .description("print one setting")
    .argument("<key>", "setting name (lmrun config list shows them)")
    .option("--json", "print as JSON")
    .action(async (key: string, flags: { json?: boolean }) => (await logic()).configGet(ctx, key, flags.json === true));
  config
    .command("set")
    .description("change one setting (values are checked)")
    .argument("<key>", "setting name")
    .argument("<value>", "new value")
    .action(async (key: string, value: string) => (await logic()).configSet(ctx, key, value));
  config
    .command("unset")
    .description("remove a setting, back to its default")
    .argument("<key>", "setting name")
    .action(async (key: string) => (await logic()).configUnset(ctx, key));
  config
    .command("path")
    .description("print where the settings file is")
    .action(async () => (await logic()).configPath(ctx));
}

const logic = () => import("../actions/config.js");
