import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `list` command is registered here once it lands.
export function registerList(_program: Command, _ctx: CommandContext): void {}
