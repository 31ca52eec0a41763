import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `config` command is registered here once it lands.
export function registerConfig(_program: Command, _ctx: CommandContext): void {}
