import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { parseRpcEndpoint, parseRpcEndpoints, parseTensorSplit } from "../../src/engine/rpc/endpoints.js";
import { probeRpcWorker, probeRpcWorkers, RpcWorkerError } from "../../src/engine/rpc/preflight.js";
import { UsageError } from "../../src/errors.js";

describe("--rpc endpoints", () => {
  it("parses a list of HOST:PORT", () => {
    expect(parseRpcEndpoints("127.0.0.1:50052, worker-2.lan:6000")).toEqual([
      { host: "127.0.0.1", port: 50052, address: "127.0.0.1:50052" },
      { host: "worker-2.lan", port: 6000, address: "worker-2.lan:6000" },
    ]);
  });
  it("refuses what llama.cpp would abort on, with the reason", () => {
    expect(() => parseRpcEndpoint("127.0.0.1")).toThrow(/"127.0.0.1" is not HOST:PORT/);
    expect(() => parseRpcEndpoint("[::1]:50052")).toThrow(UsageError);
    try {
      parseRpcEndpoint("::1:50052");
    } catch (error) {
      expect((error as UsageError).hint).toMatch(/no IPv6/);
    }
    expect(() => parseRpcEndpoint("host:70000")).toThrow(/out of range/);
    expect(() => parseRpcEndpoints("a:1,a:1")).toThrow(/listed twice/);
    expect(() => parseRpcEndpoints(" , ")).toThrow(/at least one worker/);
    expect(() => parseRpcEndpoints(Array.from({ length: 17 }, (_, i) => `h:${i + 1}`).join(","))).toThrow(/at most 16/);
  });
  it("parses --tensor-split as llama.cpp's -ts does", () => {
    expect(parseTensorSplit("3,1")).toEqual([3, 1]);
    expect(parseTensorSplit("0.5/0.5")).toEqual([0.5, 0.5]);
    expect(() => parseTensorSplit("0,0")).toThrow(/above 0/);
    expect(() => parseTensorSplit("a,1")).toThrow(/proportions/);
  });
});

/** A fake worker speaking just enough of llama.cpp's RPC protocol, with faults on demand. */
function fakeWorker(behaviour: { version?: [number, number, number]; helloSize?: number; silent?: boolean; closeOnHello?: boolean; devices?: [bigint, bigint][] }) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (buffered.length < 9) return;
        const cmd = buffered[0]!;
        const size = Number(buffered.readBigUInt64LE(1));
        if (buffered.length < 9 + size) return;
        const payload = buffered.subarray(9, 9 + size);
        buffered = buffered.subarray(9 + size);
        if (behaviour.silent) continue;
        if (cmd === 14 && behaviour.closeOnHello) return void socket.destroy();
        const reply = (body: Buffer) => {
          const head = Buffer.alloc(8);
          head.writeBigUInt64LE(BigInt(body.length));
          socket.write(Buffer.concat([head, body]));
        };
        if (cmd === 14) {
          const body = Buffer.alloc(behaviour.helloSize ?? 28);
          const [major, minor, patch] = behaviour.version ?? [7, 0, 0];
          body[0] = major;
          if (body.length > 1) body[1] = minor;
          if (body.length > 2) body[2] = patch;
          reply(body);
        } else if (cmd === 15) {
          const body = Buffer.alloc(4);
          body.writeUInt32LE((behaviour.devices ?? [[1n, 2n]]).length);
          reply(body);
        } else if (cmd === 11) {
          const [free, total] = (behaviour.devices ?? [[1n, 2n]])[payload.readUInt32LE(0)]!;
          const body = Buffer.alloc(16);
          body.writeBigUInt64LE(free, 0);
          body.writeBigUInt64LE(total, 8);
          reply(body);
        }
      }
    });
  });
  return new Promise<{ endpoint: { host: string; port: number; address: string }; close(): Promise<void> }>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        endpoint: { host: "127.0.0.1", port, address: `127.0.0.1:${port}` },
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});
async function worker(behaviour: Parameters<typeof fakeWorker>[0]) {
  const fake = await fakeWorker(behaviour);
  cleanups.push(fake.close);
  return fake.endpoint;
}

describe("RPC pre-flight", () => {
  it("reads the protocol version and each device's memory", async () => {
    const endpoint = await worker({ devices: [[1000n, 4000n], [5n * 2n ** 30n, 8n * 2n ** 30n]] });
    const info = await probeRpcWorker(endpoint);
    expect(info.version).toBe("7.0.0");
    expect(info.devices).toEqual([
      { index: 0, freeBytes: 1000, totalBytes: 4000 },
      { index: 1, freeBytes: 5 * 2 ** 30, totalBytes: 8 * 2 ** 30 },
    ]);
  });

  it("names a worker of another protocol version with both versions", async () => {
    const endpoint = await worker({ version: [8, 0, 0] });
    await expect(probeRpcWorker(endpoint)).rejects.toThrow(`worker ${endpoint.address} speaks RPC protocol 8.0.0, but this lmrun's llama.cpp speaks 7.0.0`);
    const newerMinor = await worker({ version: [7, 1, 0] });
    await expect(probeRpcWorker(newerMinor)).rejects.toMatchObject({ reason: "version" });
    const old = await worker({ version: [3, 0, 0], helloSize: 3 });
    await expect(probeRpcWorker(old)).rejects.toThrow(/speaks RPC protocol 3\.0\.0/);
  });

  it("says the worker hung up on the hello (an older or newer protocol)", async () => {
    const endpoint = await worker({ closeOnHello: true });
    await expect(probeRpcWorker(endpoint)).rejects.toThrow(/closed the connection instead of answering the RPC hello/);
  });

  it("calls a worker that accepts but never answers busy, within the timeout", async () => {
    const endpoint = await worker({ silent: true });
    const error = await probeRpcWorker(endpoint, { replyTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcWorkerError);
    expect((error as RpcWorkerError).reason).toBe("busy");
    expect((error as Error).message).toMatch(/busy with another client \(a worker serves one client at a time\)/);
  });

  it("names an unreachable worker", async () => {
    const free = await worker({});
    await cleanups.pop()!();
    const error = await probeRpcWorkers([free], { connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect((error as Error).message).toBe(`worker ${free.address} is not reachable: connection refused (nothing listens there)`);
    expect((error as RpcWorkerError).hint).toMatch(/lmrun rpc-server/);
  });
});
