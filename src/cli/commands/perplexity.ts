import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `perplexity` command is registered here once it lands.
export function registerPerplexity(_program: Command, _ctx: CommandContext): void {}
