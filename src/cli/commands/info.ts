import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { parseGpu } from "../parse.js";

export function registerInfo(program: Command, ctx: CommandContext): void {
  program
    .command("info")
    .description("show the hardware and llama.cpp backends lmrun sees: CPU, cores, RAM, GPUs and VRAM")
    .option("--gpu <backend>", "backend to report as active: auto, cuda, vulkan, metal or cpu", (v: string) => parseGpu(v))
    .option("--rpc <workers>", "also ask these llama.cpp RPC workers (HOST:PORT,...) for their devices and free memory")
    .option("--json", "print one JSON object")
    .action(async (flags: { gpu?: ReturnType<typeof parseGpu>; json?: boolean; rpc?: string }) => {
      const { resolveRpc } = await import("../modelOptions.js");
      const rpc = resolveRpc({ ...(flags.rpc !== undefined ? { rpc: flags.rpc } : {}) }, ctx.env);
      const { systemReport } = await import("../../engine/system.js");
      const { formatSystemReport } = await import("../../bench/info.js");
      const report = await systemReport({ gpu: flags.gpu ?? "auto", probeBackends: true });
      const workers = rpc ? await import("../../engine/rpc/preflight.js").then(({ probeRpcWorkers }) => probeRpcWorkers(rpc.endpoints, { signal: ctx.signal })) : undefined;
      const { listEngines } = await import("../../engine/engines.js");
      const engines = (await listEngines(ctx.env)).map(({ id, gpu, rpc: hasRpc, current }) => ({ id, gpu, rpc: hasRpc, current }));
      if (flags.json) {
        const rpcWorkers = workers?.map((worker) => ({ endpoint: worker.endpoint.address, protocol: worker.version, devices: worker.devices }));
        ctx.out.json({ ...report, engineBuilds: engines, ...(rpcWorkers ? { rpcWorkers } : {}) });
        return;
      }
      ctx.out.text(formatSystemReport(report));
      ctx.out.text(
        `\nengine builds (lmrun engine ls): ${engines.length === 0 ? "none; --rpc needs one: lmrun engine build --rpc" : engines.map((e) => `${e.id}${e.current ? "" : " (stale)"}`).join(", ")}\n`,
      );
      if (workers) {
        const { formatRpcWorkers } = await import("../../bench/info.js");
        ctx.out.text(formatRpcWorkers(workers));
      }
    });
}
