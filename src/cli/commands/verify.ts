import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `verify` command is registered here once it lands.
export function registerVerify(_program: Command, _ctx: CommandContext): void {}
