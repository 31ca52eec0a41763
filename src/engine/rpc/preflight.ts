import net from "node:net";
import { LmrunError } from "../../errors.js";
import type { RpcEndpoint } from "./endpoints.js";

/**
 * A JavaScript client for the first commands of llama.cpp's RPC protocol (ggml/src/ggml-rpc/ggml-rpc.cpp
 * of the llama.cpp node-llama-cpp ships): enough to check a worker before llama.cpp's own client meets
 * it, because that client aborts the whole process on a refused connection, a failed handshake or
 * another protocol version, and waits forever on a worker that is busy with another client.
 *
 * Wire format (host byte order, little-endian on every platform llama.cpp's RPC runs on):
 *   request  | cmd u8 | size u64 | payload |      response | size u64 | payload |
 *   HELLO (14): payload = conn_caps[24] (zeros: plain TCP) → {major u8, minor u8, patch u8, pad u8, conn_caps[24]}
 *   DEVICE_COUNT (15): no payload → {count u32}
 *   GET_DEVICE_MEMORY (11): {device u32} → {free u64, total u64}
 */
export const RPC_PROTOCOL = { major: 7, minor: 0, patch: 0 } as const;
const CMD_GET_DEVICE_MEMORY = 11;
const CMD_HELLO = 14;
const CMD_DEVICE_COUNT = 15;
const CONN_CAPS_SIZE = 24;

export interface RpcWorkerDevice {
  /** The device's index on the worker. */
  index: number;
  freeBytes: number;
  totalBytes: number;
}

export interface RpcWorkerInfo {
  endpoint: RpcEndpoint;
  version: string;
  devices: RpcWorkerDevice[];
}

export interface PreflightOptions {
  /** For the TCP connection (default 5 s). */
  connectTimeoutMs?: number;
  /** For each answer, the hello included (default 5 s): a worker busy with another client never answers. */
  replyTimeoutMs?: number;
  signal?: AbortSignal | undefined;
}

/** One worker's pre-flight failed: the message names it and says why, in one line. */
export class RpcWorkerError extends LmrunError {
  constructor(
    readonly endpoint: RpcEndpoint,
    readonly reason: "unreachable" | "busy" | "version" | "protocol",
    message: string,
    hint: string,
  ) {
    super(message, { hint });
  }
}

/** Connects, says hello, checks the protocol version, asks for the devices and their memory, and hangs up. */
export async function probeRpcWorker(endpoint: RpcEndpoint, options: PreflightOptions = {}): Promise<RpcWorkerInfo> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const replyTimeoutMs = options.replyTimeoutMs ?? 5000;
  const socket = await connect(endpoint, connectTimeoutMs, options.signal);
  const reader = new ReplyReader(socket);
  try {
    const ask = async (cmd: number, payload: Buffer, what: string): Promise<Buffer> => {
      socket.write(frame(cmd, payload));
      return reader.reply(replyTimeoutMs, what, endpoint, options.signal);
    };
    const hello = await ask(CMD_HELLO, Buffer.alloc(CONN_CAPS_SIZE), "hello");
    if (hello.length < 3) {
      throw new RpcWorkerError(endpoint, "version", `worker ${endpoint.address} answered the RPC hello with ${hello.length} bytes, which is not protocol ${versionText(RPC_PROTOCOL)}`, sameBuildHint);
    }
    const version = { major: hello[0]!, minor: hello[1]!, patch: hello[2]! };
    // llama.cpp's client rule (negotiate_hello): same major, minor not newer than its own.
    if (version.major !== RPC_PROTOCOL.major || version.minor > RPC_PROTOCOL.minor || hello.length !== 4 + CONN_CAPS_SIZE) {
      throw new RpcWorkerError(
        endpoint,
        "version",
        `worker ${endpoint.address} speaks RPC protocol ${versionText(version)}, but this lmrun's llama.cpp speaks ${versionText(RPC_PROTOCOL)}`,
        sameBuildHint,
      );
    }
    const countReply = await ask(CMD_DEVICE_COUNT, Buffer.alloc(0), "device count");
    if (countReply.length !== 4) throw malformed(endpoint, "device count");
    const count = countReply.readUInt32LE(0);
    const devices: RpcWorkerDevice[] = [];
    for (let index = 0; index < count; index++) {
      const request = Buffer.alloc(4);
      request.writeUInt32LE(index, 0);
      const memory = await ask(CMD_GET_DEVICE_MEMORY, request, "device memory");
      if (memory.length !== 16) throw malformed(endpoint, "device memory");
      devices.push({ index, freeBytes: Number(memory.readBigUInt64LE(0)), totalBytes: Number(memory.readBigUInt64LE(8)) });
    }
    if (devices.length === 0) {
      throw new RpcWorkerError(endpoint, "protocol", `worker ${endpoint.address} has no devices`, "Start it with a device (lmrun rpc-server --device)");
    }
    return { endpoint, version: versionText(version), devices };
  } finally {
    reader.dispose();
    socket.destroy();
  }
}

/** Every worker at once; the first failure (in the order given) is the error. */
export async function probeRpcWorkers(endpoints: RpcEndpoint[], options: PreflightOptions = {}): Promise<RpcWorkerInfo[]> {
  const outcomes = await Promise.allSettled(endpoints.map((endpoint) => probeRpcWorker(endpoint, options)));
  const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
  if (failed) throw failed.reason;
  return outcomes.map((outcome) => (outcome as PromiseFulfilledResult<RpcWorkerInfo>).value);
}

const sameBuildHint = "Run the same lmrun engine build (the same llama.cpp release) on every machine: lmrun rpc-server, or ggml-rpc-server built from that source";

function versionText(version: { major: number; minor: number; patch: number }): string {
  return `${version.major}.${version.minor}.${version.patch}`;
}

function malformed(endpoint: RpcEndpoint, what: string): RpcWorkerError {
  return new RpcWorkerError(endpoint, "protocol", `worker ${endpoint.address} sent a malformed ${what} reply`, sameBuildHint);
}

function frame(cmd: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUInt8(cmd, 0);
  header.writeBigUInt64LE(BigInt(payload.length), 1);
  return Buffer.concat([header, payload]);
}

function connect(endpoint: RpcEndpoint, timeoutMs: number, signal: AbortSignal | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port, family: 4 });
    socket.setNoDelay(true);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("connect");
      socket.removeAllListeners("error");
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        resolve(socket);
      }
    };
    const onAbort = (): void => finish(signal?.reason instanceof Error ? signal.reason : new Error("interrupted"));
    const timer = setTimeout(
      () =>
        finish(
          new RpcWorkerError(
            endpoint,
            "unreachable",
            `worker ${endpoint.address} did not accept a connection within ${seconds(timeoutMs)}`,
            "Check the address, that the worker runs, and the firewall (a worker busy with another client can also fill its queue)",
          ),
        ),
      timeoutMs,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => finish());
    socket.once("error", (error: NodeJS.ErrnoException) => {
      const why =
        error.code === "ECONNREFUSED" ? "connection refused (nothing listens there)"
        : error.code === "ENOTFOUND" || error.code === "EAI_AGAIN" ? "unknown host"
        : error.code === "EHOSTUNREACH" || error.code === "ENETUNREACH" ? "host unreachable"
        : error.message;
      finish(new RpcWorkerError(endpoint, "unreachable", `worker ${endpoint.address} is not reachable: ${why}`, "Start it with `lmrun rpc-server` on that machine, or fix the address"));
    });
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}

/** Reads `| size u64 | payload |` replies off one socket. */
class ReplyReader {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  constructor(private readonly socket: net.Socket) {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onEnd);
  }

  async reply(timeoutMs: number, what: string, endpoint: RpcEndpoint, signal: AbortSignal | undefined): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buffered.length >= 8) {
        const size = this.buffered.readBigUInt64LE(0);
        if (size > 1_000_000n) throw malformed(endpoint, what);
        const end = 8 + Number(size);
        if (this.buffered.length >= end) {
          const payload = this.buffered.subarray(8, end);
          this.buffered = this.buffered.subarray(end);
          return payload;
        }
      }
      if (this.ended) {
        throw new RpcWorkerError(
          endpoint,
          what === "hello" ? "version" : "protocol",
          `worker ${endpoint.address} closed the connection instead of answering the RPC ${what}`,
          what === "hello" ? `It probably speaks another RPC protocol than ${versionText(RPC_PROTOCOL)} (its log says which). ${sameBuildHint}` : sameBuildHint,
        );
      }
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error("interrupted");
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new RpcWorkerError(
          endpoint,
          "busy",
          `worker ${endpoint.address} accepted the connection but did not answer the RPC ${what} within ${seconds(timeoutMs)}: it is busy with another client (a worker serves one client at a time)`,
          "Wait until the other client is done, or start another worker",
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        const onAbort = (): void => resolve();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.wake = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  dispose(): void {
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("close", this.onEnd);
    this.socket.off("error", this.onEnd);
  }
}
