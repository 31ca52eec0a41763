// RPC workers and a latency proxy on 127.0.0.1, for the RPC tests and `npm run bench:rpc`.
//
//   const worker = await startRpcWorker({ threads: 1 });   // `lmrun rpc-server` on a free port
//   worker.endpoint  // "127.0.0.1:PORT";  await worker.stop();
//   const proxy = await startLatencyProxy({ upstreamPort: worker.port, rttMs: 5 });
//
// The proxy delays every chunk by half the round trip in each direction (in order), the way a network
// link of that latency would; bandwidth is not limited.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const lmrunBin = path.join(repoRoot, "bin", "lmrun.js");

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a worker and resolves once it answers (its "listening on" line). `command` defaults to
 * `lmrun rpc-server`; pass { binary: ".../ggml-rpc-server" } for llama.cpp's own.
 */
export async function startRpcWorker({ threads = 1, port, env = {}, binary, timeoutMs = 120_000 } = {}) {
  port ??= await freePort();
  const args = binary ? ["-H", "127.0.0.1", "-p", String(port), "-t", String(threads)] : [lmrunBin, "rpc-server", "--port", String(port), "--threads", String(threads)];
  const child = spawn(binary ?? process.execPath, args, {
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (log += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (log += d));
  const exited = new Promise((resolve) => child.once("close", (code, signal) => resolve({ code, signal })));
  // ggml-rpc-server's banner is printf'd to a pipe (buffered until the first client): wait for its port instead.
  if (!binary) await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the RPC worker on port ${port} did not start within ${timeoutMs} ms:\n${log}`)), timeoutMs);
    const check = () => {
      // lmrun rpc-server says "listening on" once it answered its own hello.
      if (/listening on/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", check);
    child.stderr.on("data", check);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the RPC worker on port ${port} exited (${code ?? signal}) before it listened:\n${log}`));
    });
  });
  if (binary) await waitForPort(port, timeoutMs);
  return {
    port,
    endpoint: `127.0.0.1:${port}`,
    child,
    log: () => log,
    exited,
    /** SIGKILL: a worker that dies (the fault tests); stop() for a clean end. */
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((resolve) => {
      // A bare connect-and-close: the worker logs a client that said nothing and goes back to accept().
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A TCP proxy on a free port that adds `rttMs` of round-trip latency in front of 127.0.0.1:upstreamPort. */
export async function startLatencyProxy({ upstreamPort, rttMs }) {
  const oneWay = rttMs / 2;
  const sockets = new Set();
  // One FIFO per direction with one timer: separate timers per chunk can fire out of order (Node groups
  // timers by duration), and a reordered stream is a corrupt one.
  const delayed = (from, to) => {
    const queue = [];
    let timer;
    const pump = () => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && queue[0].at <= now) {
        const { chunk } = queue.shift();
        if (chunk === null) return void to.destroy();
        if (to.writable) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(pump, Math.max(0, queue[0].at - now));
    };
    const push = (chunk) => {
      if (oneWay <= 0 && queue.length === 0) return chunk === null ? to.destroy() : void to.write(chunk);
      queue.push({ at: performance.now() + oneWay, chunk });
      if (timer === undefined) timer = setTimeout(pump, Math.max(0, queue[0].at - performance.now()));
    };
    from.on("data", (chunk) => push(chunk));
    from.on("close", () => push(null));
    from.on("error", () => to.destroy());
  };
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: "127.0.0.1", port: upstreamPort });
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    client.on("close", () => sockets.delete(client));
    upstream.on("close", () => sockets.delete(upstream));
    delayed(client, upstream);
    delayed(upstream, client);
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port,
    endpoint: `127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
