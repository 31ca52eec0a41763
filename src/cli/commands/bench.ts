import type { Command } from "commander";
import type { CommandContext } from "../context.js";

// Placeholder: the `bench` command is registered here once it lands.
export function registerBench(_program: Command, _ctx: CommandContext): void {}
