import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `info` command is registered here once it lands.
export function registerInfo(_program: Command, _ctx: CommandContext): void {}
