import path from "node:path";
import type { Command } from "commander";
import type { RpcLoadOptions } from "../engine/types.js";
import { LmrunError, SilentExit } from "../errors.js";
import type { CommandContext } from "./context.js";
import { delegatesRpc, resolveRpc } from "./modelOptions.js";

/** Set in the child that runs the model: it must not delegate again. */
export const RPC_CHILD_ENV = "LMRUN_RPC_CHILD";

/**
 * The one place where a model command given RPC workers (--rpc or LMRUN_RPC) hands itself to a child
 * process: before the action of every command whose --rpc came from addRpcOption (run, chat, bench,
 * perplexity, eval, batch; not chat --sessions, nor serve, which supervises a child of its own).
 */
export function delegateRpcCommands(program: Command, ctx: CommandContext): void {
  program.hook("preAction", async (_program, action) => {
    if (delegatesRpc(action)) await delegateToRpcChild(ctx, resolveRpc(action.opts(), ctx.env));
  });
}

/**
 * With RPC workers, llama.cpp aborts the whole process when a worker dies or stops answering
 * mid-run (GGML_ABORT in its RPC client). So the command runs again in a child process with the
 * same arguments; this process relays its output, and when the child ends it ends too: with the
 * child's exit code (SilentExit), or, when the child died of such an abort, with one line naming
 * the worker that went away (exit 1). Returns only when the command should simply run here (no
 * workers, already the child, or lmrun not started from its own bin script).
 */
async function delegateToRpcChild(ctx: CommandContext, rpc: RpcLoadOptions | undefined): Promise<void> {
  const again = rpcChildCommand(ctx.env, rpc);
  if (again === undefined || rpc === undefined) return;
  // Loaded here: every command passes through this hook, and a client call has no use for them (start-up).
  const [{ spawn }, { default: readline }] = await Promise.all([import("node:child_process"), import("node:readline")]);
  const child = spawn(process.execPath, again.args, { env: again.env, stdio: ["inherit", "inherit", "pipe"] });
  const forward = (): void => {
    if (child.exitCode === null) child.kill("SIGTERM");
  };
  ctx.signal.addEventListener("abort", forward, { once: true });
  let abortLine: string | undefined;
  const lines = readline.createInterface({ input: child.stderr! });
  lines.on("line", (line) => {
    // llama.cpp's abort, and what follows it: kept out of the output, summarised below.
    if (abortLine !== undefined) return;
    abortLine = rpcAbortText(line);
    if (abortLine === undefined) ctx.stderr.write(`${line}\n`);
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
  ctx.signal.removeEventListener("abort", forward);
  if (code !== null && abortLine === undefined) throw new SilentExit(code);
  if (ctx.signal.aborted) throw new SilentExit(130);
  throw await explainChildDeath(rpc, signal, abortLine);
}

/**
 * How to run this very command again as the RPC child (same arguments, and the environment that stops
 * it from delegating again), or undefined when it should run here: no --rpc, already the child, or
 * lmrun not started from its own bin script.
 */
export function rpcChildCommand(env: NodeJS.ProcessEnv, rpc: RpcLoadOptions | undefined): { args: string[]; env: NodeJS.ProcessEnv } | undefined {
  if (rpc === undefined || env[RPC_CHILD_ENV] === "1") return undefined;
  const script = process.argv[1];
  if (!script || path.basename(script) !== "lmrun.js") return undefined;
  return { args: [...process.execArgv, script, ...process.argv.slice(2)], env: { ...env, [RPC_CHILD_ENV]: "1", GGML_NO_BACKTRACE: "1" } };
}

/** llama.cpp's RPC abort in a line of the child's stderr, as the text worth quoting; undefined for any other line. */
export function rpcAbortText(line: string): string | undefined {
  if (!/GGML_ABORT|ggml-rpc\.cpp:\d+:|Remote RPC server crashed|Failed to connect to|RPC handshake failed/.test(line)) return undefined;
  return line.replace(/^.*?ggml-rpc\.cpp:\d+:\s*/, "").trim();
}

/** Which worker went away: the ones that no longer answer a hello are named. */
export async function explainChildDeath(rpc: RpcLoadOptions, signal: NodeJS.Signals | null, abortLine: string | undefined): Promise<LmrunError> {
  const { probeRpcWorker } = await import("../engine/rpc/preflight.js");
  const gone: string[] = [];
  await Promise.all(
    rpc.endpoints.map(async (endpoint) => {
      try {
        await probeRpcWorker(endpoint, { connectTimeoutMs: 2000, replyTimeoutMs: 2000 });
      } catch (error) {
        gone.push(`${endpoint.address} (it ${(error as Error).message.replace(/^worker \S+ /, "")})`);
      }
    }),
  );
  const what = abortLine ? `llama.cpp: ${abortLine}` : `the model process died of ${signal ?? "an unknown cause"}`;
  if (gone.length > 0) {
    return new LmrunError(`RPC worker ${gone.join("; ")} went away during the run; ${what}`, { hint: "Restart the worker and run again" });
  }
  return new LmrunError(`the run failed on an RPC worker; ${what}`, { hint: "Check the workers' logs, then run again" });
}
