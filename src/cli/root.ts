import { Command } from "commander";
import type { CommandContext } from "./context.js";
import { delegateRpcCommands } from "./rpcChild.js";
import { packageVersion } from "./version.js";

/** The root command: its global flags and hooks, before any command is registered. */
export function rootProgram(ctx: CommandContext): Command {
  const program = new Command("lmrun")
    .description("Run large language models locally: one-shot generation, chat, model pulls, benchmarks and perplexity.")
    .version(packageVersion(), "-V, --version", "print the version")
    .option("--verbose", "show llama.cpp logs and stack traces")
    .option("-q, --quiet", "no progress output on stderr")
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .enablePositionalOptions(false);
  program.hook("preAction", (_this, action) => {
    const globals = action.optsWithGlobals() as { verbose?: boolean; quiet?: boolean };
    ctx.verbose = globals.verbose === true;
    ctx.quiet = globals.quiet === true;
  });
  // Any command given RPC workers runs its model in a child process a dying worker cannot take this one down with.
  delegateRpcCommands(program, ctx);
  return program;
}
