import type { Command } from "commander";
import type { CommandContext } from "./context.js";
import { addExamples } from "./examples.js";
import { rootProgram } from "./root.js";

type Register = (program: Command, ctx: CommandContext) => void;

/**
 * Each command's module by the names a call may give it. A call that names one loads that module alone:
 * `lmrun run` through a server then loads about a third of the CLI's modules (start-up: Node's ES module
 * loader costs ~0.3 ms a module here, and the shell-loop target counts every millisecond above `node -e 0`).
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  run: async () => (await import("./commands/run.js")).registerRun,
  chat: async () => (await import("./commands/chat.js")).registerChat,
  pull: async () => (await import("./commands/pull.js")).registerPull,
  ls: async () => (await import("./commands/list.js")).registerList,
  list: async () => (await import("./commands/list.js")).registerList,
  rm: async () => (await import("./commands/rm.js")).registerRm,
  show: async () => (await import("./commands/show.js")).registerShow,
  verify: async () => (await import("./commands/verify.js")).registerVerify,
  config: async () => (await import("./commands/config.js")).registerConfig,
  bench: async () => (await import("./commands/bench.js")).registerBench,
  info: async () => (await import("./commands/info.js")).registerInfo,
  perplexity: async () => (await import("./commands/perplexity.js")).registerPerplexity,
  eval: async () => (await import("./commands/eval.js")).registerEval,
  engine: async () => (await import("./commands/engine.js")).registerEngine,
  "rpc-server": async () => (await import("./commands/rpcServer.js")).registerRpcServer,
  serve: async () => (await import("./commands/serve.js")).registerServe,
  ps: async () => (await import("./commands/ps.js")).registerPs,
  stop: async () => (await import("./commands/stop.js")).registerStop,
  batch: async () => (await import("./commands/batch.js")).registerBatch,
};

/**
 * The program for these arguments: the named command alone, or every command when none is named (help, the
 * version, `completion`, which lists them all, or an unknown name, which gets suggestions).
 */
export async function programFor(ctx: CommandContext, argv: readonly string[]): Promise<Command> {
  // The root's own flags take no values, so the first word that is not a flag is the command.
  const name = argv.find((arg) => !arg.startsWith("-"));
  const load = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) return (await import("./program.js")).buildProgram(ctx);
  const program = rootProgram(ctx);
  (await load())(program, ctx);
  addExamples(program);
  return program;
}
