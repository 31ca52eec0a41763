import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { lmrunHome } from "../../src/config/paths.js";

/**
 * What the RPC end-to-end tests share: the engine build with llama.cpp's RPC backend they need (looked up
 * where lmrun looks, or in LMRUN_ENGINES; without one they skip and say how to make it), and a client
 * that holds a worker busy.
 */
export const enginesDir = process.env.LMRUN_ENGINES ?? path.join(lmrunHome(process.env), "engines");
export const rpcEngine = findRpcEngine(enginesDir);
export const engineSkip = rpcEngine ? "" : ` [skipped: needs an RPC engine build: run \`lmrun engine build --rpc\` once (about 25 min on 2 busy cores), or set LMRUN_ENGINES to a directory with one (looked in ${enginesDir})]`;
export const engineEnv = { LMRUN_ENGINES: enginesDir };

function findRpcEngine(dir: string): string | undefined {
  try {
    for (const name of fs.readdirSync(dir)) {
      const record = JSON.parse(fs.readFileSync(path.join(dir, name, "engine.json"), "utf8")) as { rpc?: boolean; gpu?: string };
      if (record.rpc && record.gpu === "cpu") return name;
    }
  } catch {
    // no engines
  }
  return undefined;
}

/** Another client of the worker on `port`: connected and past its hello, holding it (a worker serves one client at a time). */
export async function holdRpcWorker(port: number): Promise<net.Socket> {
  const holder = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve) => holder.once("connect", () => resolve()));
  const hello = Buffer.alloc(9 + 24);
  hello[0] = 14;
  hello.writeBigUInt64LE(24n, 1);
  holder.write(hello);
  await new Promise<void>((resolve) => holder.once("data", () => resolve()));
  return holder;
}
