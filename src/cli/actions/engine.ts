import type { EngineBuildEvent } from "../../engine/engineBuild.js";
import type { EngineGpu } from "../../engine/engines.js";
import { formatBytes, formatDuration, textTable } from "../../io/format.js";
import { startSpinner } from "../../io/progress.js";
import type { CommandContext } from "../context.js";

export async function buildEngineCommand(ctx: CommandContext, options: { rpc: boolean; gpu: EngineGpu; json: boolean }): Promise<void> {
  const { buildEngine } = await import("../../engine/engineBuild.js");
  const spinner = await startSpinner("preparing the llama.cpp build", { stderr: ctx.stderr, env: ctx.env, quiet: ctx.quiet });
  const startedAt = Date.now();
  let lastTenth = -1;
  const onEvent = (event: EngineBuildEvent): void => {
    const elapsed = formatDuration(Date.now() - startedAt);
    if (event.type === "start") {
      ctx.out.info(`building ${event.id} (log: ${event.logFile})`);
      if (!ctx.out.stderrIsTTY && !ctx.quiet) ctx.out.diag(`building ${event.id}; the log goes to ${event.logFile}`);
    } else if (event.type === "waiting") {
      ctx.out.diag(`waiting for another engine build (pid ${event.ownerPid ?? "?"}) to finish…`);
    } else if (event.type === "phase") {
      spinner.update(event.message);
    } else {
      spinner.update(`compiling llama.cpp: ${event.done}/${event.total} ${event.what} (${elapsed})`);
      // Without a terminal: one line per tenth, so a CI log shows it moving.
      const tenth = Math.floor((event.done / event.total) * 10);
      if (!ctx.out.stderrIsTTY && !ctx.quiet && tenth > lastTenth) {
        lastTenth = tenth;
        ctx.out.diag(`compiling llama.cpp: ${event.done}/${event.total} (${elapsed})`);
      }
    }
  };
  try {
    const built = await buildEngine({ gpu: options.gpu, rpc: options.rpc, env: ctx.env, signal: ctx.signal, onEvent });
    spinner.succeed(`built ${built.id} in ${formatDuration(built.buildSeconds * 1000)}`);
    if (options.json) ctx.out.json(built);
    else ctx.out.text(`${built.id}\t${built.dir}\t${formatDuration(built.buildSeconds * 1000)}\n`);
  } finally {
    spinner.stop();
  }
}

export async function listEnginesCommand(ctx: CommandContext, json: boolean): Promise<void> {
  const { listEngines } = await import("../../engine/engines.js");
  const engines = await listEngines(ctx.env);
  if (json) {
    ctx.out.json(engines);
    return;
  }
  if (engines.length === 0) {
    ctx.out.info("no engine builds (the prebuilt binaries are used); make one with: lmrun engine build --rpc");
    return;
  }
  const rows = engines.map((engine) => [
    engine.id,
    backendsOf(engine),
    `${engine.llamaCppRelease} (${engine.llamaCppCommit})`,
    formatBytes(engine.sizeBytes),
    engine.current ? engine.builtAt.slice(0, 16).replace("T", " ") : `stale: for node-llama-cpp ${engine.nodeLlamaCppVersion}`,
  ]);
  ctx.out.text(textTable(["ID", "BACKENDS", "LLAMA.CPP", "SIZE", "BUILT"], rows));
}

export function backendsOf(engine: { gpu: EngineGpu; rpc: boolean }): string {
  return [engine.gpu === "cpu" ? "CPU" : engine.gpu === "cuda" ? "CUDA,CPU" : "Vulkan,CPU", ...(engine.rpc ? ["RPC"] : [])].join(",");
}

export async function removeEngineCommand(ctx: CommandContext, id: string, json: boolean): Promise<void> {
  const { removeEngine } = await import("../../engine/engines.js");
  const removed = await removeEngine(id, ctx.env);
  if (json) ctx.out.json({ removed: removed.id, dir: removed.dir, sizeBytes: removed.sizeBytes });
  else ctx.out.info(`removed ${removed.id} (${formatBytes(removed.sizeBytes)})`);
}
