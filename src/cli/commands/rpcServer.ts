import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { parseInteger } from "../parse.js";

export function registerRpcServer(program: Command, ctx: CommandContext): void {
  program
    .command("rpc-server")
    .description("serve this machine's devices to other lmrun/llama.cpp processes over llama.cpp's RPC protocol (no authentication, no encryption)")
    .option("--host <ipv4>", "address to listen on; anything but 127.0.0.1 exposes the worker (see README, Distributed inference)", "127.0.0.1")
    .option("-p, --port <port>", "TCP port", parseInteger(1, 65535), 50052)
    .option("-t, --threads <n>", "CPU threads for the CPU device (default: half the cores, as ggml-rpc-server)", parseInteger(1, 1024))
    .option("-d, --device <names>", "devices to serve, comma-separated (default: every GPU, else the CPU); a wrong name lists them")
    .option("-c, --cache [dir]", "keep large tensors in a local file cache, so a reload of the same model skips the transfer")
    .option("--gpu <backend>", "the engine build to serve from: cpu, cuda or vulkan (default: the best RPC build there is)")
    .action(async (flags: { host: string; port: number; threads?: number; device?: string; cache?: string | boolean; gpu?: string }) => {
      const { runRpcServer } = await import("../actions/rpcServer.js");
      await runRpcServer(ctx, flags);
    });
}
