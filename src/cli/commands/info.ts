import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { parseGpu } from "../parse.js";

export function registerInfo(program: Command, ctx: CommandContext): void {
  program
    .command("info")
    .description("show the hardware and llama.cpp backends lmrun sees: CPU, cores, RAM, GPUs and VRAM")
    .option("--gpu <backend>", "backend to report as active: auto, cuda, vulkan, metal or cpu", (v: string) => parseGpu(v))
    .option("--json", "print one JSON object")
    .action(async (flags: { gpu?: ReturnType<typeof parseGpu>; json?: boolean }) => {
      const { systemReport } = await import("../../engine/system.js");
      const { formatSystemReport } = await import("../../bench/info.js");
      const report = await systemReport({ gpu: flags.gpu ?? "auto", probeBackends: true });
      if (flags.json) ctx.out.json(report);
      else ctx.out.text(formatSystemReport(report));
    });
}
