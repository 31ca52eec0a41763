import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `show` command is registered here once it lands.
export function registerShow(_program: Command, _ctx: CommandContext): void {}
