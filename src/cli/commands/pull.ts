import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `pull` command is registered here once it lands.
export function registerPull(_program: Command, _ctx: CommandContext): void {}
