import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `rm` command is registered here once it lands.
export function registerRm(_program: Command, _ctx: CommandContext): void {}
