import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { addLoadOptions, addSamplingOptions } from "../modelOptions.js";
import { collect, parseInteger } from "../parse.js";
import type { BatchFlags } from "../actions/batch.js";

export function registerBatch(program: Command, ctx: CommandContext): void {
  const command = program
    .command("batch")
    .description("answer many prompts at once: one JSON request a line in, one JSON answer a line out (decoded together in slots)")
    .argument("<model>", "the model (as for run)")
    .argument("<file>", 'a JSONL file of requests ({"id", "prompt" or "messages", optional sampling fields}), or - for stdin')
    .option("-o, --output <file>", "append the answers to this file (each flushed as it comes) instead of stdout")
    .option("--resume", "with -o: skip the requests whose answers the file already holds")
    .option("--parallel <n>", "requests decoded at once: slots in-process (default 4), concurrent requests through a server (default: its slots)", parseInteger(1, 256))
    .option("-s, --system <text>", "system prompt for requests that give none")
    .option("--raw", "plain text completion: no chat template")
    .option("--no-think", "thinking models answer without thinking first (a request's \"think\" overrides it)")
    .option("--stop <text>", "stop when this text is generated, for requests that give no stop (repeatable)", collect)
    .option("--local", "run in-process even when an lmrun server is running")
    .option("--server <url>", "send the requests to the lmrun server at this URL (default: the running one, LMRUN_HOST)");
  addSamplingOptions(addLoadOptions(command));
  command.action(async (model: string, file: string, flags: BatchFlags) => {
    const { batchCommand } = await import("../actions/batch.js");
    await batchCommand(ctx, model, file, flags);
  });
}
