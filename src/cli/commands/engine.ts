import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import type { CommandContext } from "../context.js";

function parseEngineGpu(raw: string): "cpu" | "cuda" | "vulkan" {
  if (raw === "cpu" || raw === "cuda" || raw === "vulkan") return raw;
  throw new InvalidArgumentError(`expected cpu, cuda or vulkan, got "${raw}"`);
}

export function registerEngine(program: Command, ctx: CommandContext): void {
  const engine = program
    .command("engine")
    .description("llama.cpp engine builds from source (for --rpc, or a GPU toolkit the prebuilt binaries do not match)");
  engine
    .command("build")
    .description("build node-llama-cpp's bundled llama.cpp from source (10-30 minutes), kept under LMRUN_HOME/engines")
    .option("--rpc", "with llama.cpp's RPC backend (needed by --rpc and lmrun rpc-server)")
    .option("--gpu <backend>", "cpu, cuda or vulkan (default cpu)", parseEngineGpu)
    .option("--json", "print the build's record as JSON")
    .action(async (flags: { rpc?: boolean; gpu?: "cpu" | "cuda" | "vulkan"; json?: boolean }) => {
      const { buildEngineCommand } = await import("../actions/engine.js");
      await buildEngineCommand(ctx, { rpc: flags.rpc === true, gpu: flags.gpu ?? "cpu", json: flags.json === true });
    });
  engine
    .command("ls")
    .description("list the engine builds: backends, llama.cpp release and commit, size")
    .option("--json", "print them as JSON")
    .action(async (flags: { json?: boolean }) => {
      const { listEnginesCommand } = await import("../actions/engine.js");
      await listEnginesCommand(ctx, flags.json === true);
    });
  engine
    .command("rm")
    .description("delete an engine build")
    .argument("<id>", "the build's id, as engine ls shows it")
    .option("--json", "print what was deleted as JSON")
    .action(async (id: string, flags: { json?: boolean }) => {
      const { removeEngineCommand } = await import("../actions/engine.js");
      await removeEngineCommand(ctx, id, flags.json === true);
    });
}
