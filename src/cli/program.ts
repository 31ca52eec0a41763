import type { Command } from "commander";
import type { CommandContext } from "./context.js";
import { registerBatch } from "./commands/batch.js";
import { registerBench } from "./commands/bench.js";
import { registerChat } from "./commands/chat.js";
import { registerConfig } from "./commands/config.js";
import { registerEval } from "./commands/eval.js";
import { registerInfo } from "./commands/info.js";
import { registerList } from "./commands/list.js";
import { registerPerplexity } from "./commands/perplexity.js";
import { registerPs } from "./commands/ps.js";
import { registerPull } from "./commands/pull.js";
import { registerRm } from "./commands/rm.js";
import { registerRun } from "./commands/run.js";
import { registerEngine } from "./commands/engine.js";
import { registerRpcServer } from "./commands/rpcServer.js";
import { registerServe } from "./commands/serve.js";
import { registerShow } from "./commands/show.js";
import { registerStop } from "./commands/stop.js";
import { registerVerify } from "./commands/verify.js";
import { registerCompletion } from "./commands/completion.js";
import { addExamples } from "./examples.js";
import { rootProgram } from "./root.js";


/** The root command, then one register call per command module (help, completion, an unknown command). */
export function buildProgram(ctx: CommandContext): Command {
  const program = rootProgram(ctx);
  registerRun(program, ctx);
  registerChat(program, ctx);
  registerPull(program, ctx);
  registerList(program, ctx);
  registerRm(program, ctx);
  registerShow(program, ctx);
  registerVerify(program, ctx);
  registerConfig(program, ctx);
  registerBench(program, ctx);
  registerInfo(program, ctx);
  registerPerplexity(program, ctx);
  registerEval(program, ctx);
  registerEngine(program, ctx);
  registerRpcServer(program, ctx);
  registerServe(program, ctx);
  registerPs(program, ctx);
  registerStop(program, ctx);
  registerBatch(program, ctx);
  registerCompletion(program, ctx);
  // After every register call: each command's help ends with its examples (src/cli/examples.ts).
  addExamples(program);
  return program;
}
