import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `chat` command is registered here once it lands.
export function registerChat(_program: Command, _ctx: CommandContext): void {}
