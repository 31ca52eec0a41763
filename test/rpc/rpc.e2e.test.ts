import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module shared with the benchmark script
import { freePort, startRpcWorker } from "../../scripts/rpc-workers.mjs";
import { runCli as runCliWithDefaults, spawnCli, type CliOptions } from "../helpers/cli.js";
import { bundledTinyModel, hasShared, repoRoot, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { GOLDEN } from "./golden.js";
import { engineEnv, engineSkip, holdRpcWorker, rpcEngine } from "./helpers.js";

/**
 * Distributed inference on one machine: two `lmrun rpc-server` workers on 127.0.0.1 (one thread each),
 * started and killed here. They need an engine build with llama.cpp's RPC backend, which takes long to
 * make: without one these tests skip and say how to make it (the engine is looked up where lmrun looks,
 * or in LMRUN_ENGINES). The faults that need no build run always.
 */
/** Three processes on two cores (two workers and the client), on a machine that may be busy: generous limits. */
const SLOW = 180_000;
const runCli = (args: string[], options: CliOptions = {}) => runCliWithDefaults(args, { timeoutMs: SLOW - 10_000, ...options });

/** One line of text from the tiny model, greedy; the prompt is plain completion (--raw). */
const runArgs = ["run", "tiny", "--raw", "Once upon a time", "-n", "48", "--temp", "0", "--seed", "1"];

describe("--rpc without an engine build", () => {
  it("says how to make one, in one line", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-engines-"));
    try {
      const r = await runCli([...runArgs, "--rpc", "127.0.0.1:1"], { env: { LMRUN_ENGINES: empty } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        "error: --rpc needs an engine build with llama.cpp's RPC backend, and there is none (the prebuilt binaries have no RPC). Build one (once, about 10-30 minutes): lmrun engine build --rpc\n",
      );
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it("refuses a worker address llama.cpp would abort on, and LMRUN_RPC is read", async () => {
    const r = await runCli([...runArgs], { env: { LMRUN_RPC: "[::1]:50052" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: LMRUN_RPC: "[::1]:50052" is not HOST:PORT. llama.cpp\'s RPC client takes IPv4 addresses and host names only (no IPv6)\n');
    const split = await runCli([...runArgs, "--tensor-split", "1,1"]);
    expect(split.code).toBe(2);
    expect(split.stderr).toMatch(/^error: --tensor-split needs --rpc/);
  });

  it("rpc-server refuses a host name (llama.cpp's server binds IPv4 literals only)", async () => {
    const r = await runCli(["rpc-server", "--host", "localhost"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --host must be an IPv4 address/);
  });
});

describe("engine builds", () => {
  it("a missing cmake is one line, before anything is built", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-engines-"));
    try {
      // A PATH with node only: no cmake, no compiler.
      const bin = path.join(home, "bin");
      fs.mkdirSync(bin);
      fs.symlinkSync(process.execPath, path.join(bin, "node"));
      const r = await runCli(["engine", "build", "--rpc"], { env: { PATH: bin, LMRUN_ENGINES: path.join(home, "engines") } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe("error: cannot build llama.cpp: cmake is not installed (apt install cmake, or https://cmake.org/download)\n");
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it("engine ls and rm work on the store (a recorded build, not compiled here)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-engines-"));
    try {
      const id = "cpu-rpc-llama.cpp-v0.0.1-nlc-0.0.1";
      fs.mkdirSync(path.join(dir, id, "build", "Release"), { recursive: true });
      fs.writeFileSync(path.join(dir, id, "build", "Release", "libggml-rpc.so"), Buffer.alloc(1234));
      const record = { id, gpu: "cpu", rpc: true, cmakeOptions: { GGML_RPC: "ON" }, folderName: "linux-x64-test", nodeLlamaCppVersion: "0.0.1", llamaCppRelease: "v0.0.1", llamaCppCommit: "abc1234", builtAt: "2026-01-01T00:00:00.000Z", buildSeconds: 1, sizeBytes: 1234 };
      fs.writeFileSync(path.join(dir, id, "engine.json"), JSON.stringify(record));
      const ls = await runCli(["engine", "ls"], { env: { LMRUN_ENGINES: dir } });
      expect(ls.code).toBe(0);
      expect(ls.stdout).toMatch(new RegExp(`^ID +BACKENDS +LLAMA.CPP +SIZE +BUILT\\n${id.replace(/\./g, "\\.")} +CPU,RPC +v0\\.0\\.1 \\(abc1234\\) +1\\.23 KB +stale: for node-llama-cpp 0\\.0\\.1\\n$`));
      const json = JSON.parse((await runCli(["engine", "ls", "--json"], { env: { LMRUN_ENGINES: dir } })).stdout) as { id: string; current: boolean }[];
      expect(json).toMatchObject([{ id, current: false, rpc: true }]);
      // A stale build is never loaded, and the error says what to do.
      const run = await runCli([...runArgs, "--rpc", "127.0.0.1:1"], { env: { LMRUN_ENGINES: dir } });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^error: the RPC engine build .* was made for node-llama-cpp 0\.0\.1 \/ llama\.cpp v0\.0\.1, but this lmrun has .*Rebuild it: lmrun engine build --rpc/);
      const rm = await runCli(["engine", "rm", id, "--json"], { env: { LMRUN_ENGINES: dir } });
      expect(rm.code).toBe(0);
      expect(JSON.parse(rm.stdout)).toMatchObject({ removed: id, sizeBytes: 1234 });
      expect(fs.existsSync(path.join(dir, id))).toBe(false);
      const again = await runCli(["engine", "rm", id], { env: { LMRUN_ENGINES: dir } });
      expect(again.code).toBe(2);
      expect(again.stderr).toBe(`error: no engine build "${id}". There are none\n`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!rpcEngine)(`two RPC workers on 127.0.0.1${engineSkip}`, { timeout: SLOW }, () => {
  type Worker = Awaited<ReturnType<typeof startRpcWorker>> & { endpoint: string; port: number; kill(): Promise<void>; stop(): Promise<void>; log(): string };
  let a: Worker;
  let b: Worker;
  const both = () => `${a.endpoint},${b.endpoint}`;

  beforeAll(async () => {
    [a, b] = (await Promise.all([startRpcWorker({ threads: 1, env: engineEnv }), startRpcWorker({ threads: 1, env: engineEnv })])) as [Worker, Worker];
  }, SLOW);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("run --temp 0 --rpc A,B gives the text of a local run", async () => {
    const local = await runCli([...runArgs, "--gpu", "cpu"]);
    const remote = await runCli([...runArgs, "--rpc", both()], { env: engineEnv });
    expect(local.code).toBe(0);
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout.length).toBeGreaterThan(40);
    expect(remote.stdout).toBe(local.stdout);
    // llama-completion --rpc on the same workers (it ends its output with a blank line).
    expect(remote.stdout.trimEnd()).toBe(GOLDEN.runText.trimEnd());
    // Both workers served this client.
    expect(a.log()).toMatch(/Accepted client connection/);
    expect(b.log()).toMatch(/Accepted client connection/);
  });

  it("--verbose shows the layers on both workers; --tensor-split 1,0 puts them all on the first", async () => {
    const split = await runCli(["--verbose", ...runArgs.slice(0, -6), "-n", "2", "--temp", "0", "--rpc", both()], { env: engineEnv });
    expect(split.code, split.stderr).toBe(0);
    const buffer = (endpoint: string) => new RegExp(`load_tensors: RPC\\d\\[${endpoint.replace(/\./g, "\\.")}\\] model buffer size`);
    expect(split.stderr).toMatch(buffer(a.endpoint));
    expect(split.stderr).toMatch(buffer(b.endpoint));
    const one = await runCli(["--verbose", ...runArgs.slice(0, -6), "-n", "2", "--temp", "0", "--rpc", both(), "--tensor-split", "1,0"], { env: engineEnv });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).toMatch(buffer(a.endpoint));
    expect(one.stderr).not.toMatch(buffer(b.endpoint));
  });

  it("perplexity --rpc equals llama-perplexity --rpc on the same workers (4 significant digits)", async () => {
    const r = await runCli(["perplexity", bundledTinyModel, "-f", GOLDEN.perplexityText(), "-c", "128", "--rpc", both(), "--json"], { env: engineEnv });
    expect(r.code, r.stderr).toBe(0);
    const ppl = (JSON.parse(r.stdout) as { ppl: number }).ppl;
    expect(ppl.toPrecision(4)).toBe(GOLDEN.perplexity.toPrecision(4));
  });

  it("info --rpc shows each worker's devices and free memory", async () => {
    const r = await runCli(["info", "--gpu", "cpu", "--rpc", both(), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const workers = (JSON.parse(r.stdout) as { rpcWorkers: { endpoint: string; protocol: string; devices: { totalBytes: number; freeBytes: number }[] }[] }).rpcWorkers;
    expect(workers.map((w) => w.endpoint)).toEqual([a.endpoint, b.endpoint]);
    for (const worker of workers) {
      expect(worker.protocol).toBe("7.0.0");
      expect(worker.devices).toHaveLength(1);
      expect(worker.devices[0]!.totalBytes).toBe(os.totalmem());
    }
    const text = await runCli(["info", "--gpu", "cpu", "--rpc", both()]);
    expect(text.stdout).toMatch(new RegExp(`RPC workers:\\n  ${a.endpoint}  protocol 7\\.0\\.0\\n    RPC0  device 0: `));
  });

  it("bench --rpc fills llama-bench's backends and gpu_info columns as llama-bench does", async () => {
    const r = await runCli(["bench", bundledTinyModel, "-rpc", both(), "-p", "16", "-n", "4", "-r", "1", "-t", "1", "-o", "json"], { env: engineEnv });
    expect(r.code, r.stderr).toBe(0);
    const records = JSON.parse(r.stdout) as { backends: string; gpu_info: string; n_gpu_layers: number; avg_ts: number }[];
    expect(records).toHaveLength(2);
    for (const record of records) {
      expect(record.backends).toBe("RPC");
      expect(record.gpu_info).toBe(`${a.endpoint}, ${b.endpoint}`);
      expect(record.avg_ts).toBeGreaterThan(0);
    }
  });

  it("a worker that is not reachable is named, and nothing aborts", async () => {
    const port = (await freePort()) as number;
    const r = await runCli([...runArgs, "--rpc", `${a.endpoint},127.0.0.1:${port}`], { env: engineEnv });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: worker 127.0.0.1:${port} is not reachable: connection refused (nothing listens there). Start it with \`lmrun rpc-server\` on that machine, or fix the address\n`);
  });

  it("a busy worker (it serves one client at a time) is a clear error, not a hang", async () => {
    const holder = await holdRpcWorker(b.port);
    try {
      const r = await runCli([...runArgs, "--rpc", both()], { env: engineEnv });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^error: worker ${b.endpoint} accepted the connection but did not answer the RPC hello within 5 s: it is busy with another client \\(a worker serves one client at a time\\)\\. Wait until the other client is done, or start another worker\\n$`));
    } finally {
      holder.destroy();
    }
  });

  it("a worker of another protocol version is named with both versions", async () => {
    const fake = net.createServer((socket) => {
      socket.once("data", () => {
        const reply = Buffer.alloc(8 + 28);
        reply.writeBigUInt64LE(28n, 0);
        reply[8] = 6;
        reply[9] = 1;
        socket.write(reply);
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", () => resolve()));
    const port = (fake.address() as net.AddressInfo).port;
    try {
      const r = await runCli([...runArgs, "--rpc", `127.0.0.1:${port}`], { env: engineEnv });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^error: worker 127\\.0\\.0\\.1:${port} speaks RPC protocol 6\\.1\\.0, but this lmrun's llama\\.cpp speaks 7\\.0\\.0\\. Run the same lmrun engine build`));
    } finally {
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it("rpc-server warns before it listens on anything but 127.0.0.1", async () => {
    const port = (await freePort()) as number;
    const child = spawnCli(["rpc-server", "--host", "0.0.0.0", "--port", String(port), "--threads", "1"], { env: engineEnv });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(stderr)), 60_000);
        child.stderr!.on("data", () => {
          if (/listening on/.test(stderr)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const warning = stderr.indexOf("WARNING: Host ('0.0.0.0') is != '127.0.0.1'");
      expect(warning).toBeGreaterThanOrEqual(0);
      expect(stderr).toMatch(/no authentication and no encryption/);
      expect(stderr).toMatch(/ssh -N -L 50052:127\.0\.0\.1:50052/);
      expect(warning).toBeLessThan(stderr.indexOf("listening on"));
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("close", resolve));
    }
  });
});

/**
 * Runs a long scoring command (its input: `repeated` 20 times) on a fresh worker, kills the worker
 * once the model is connected and scoring, and expects one line naming the worker and exit 1.
 */
async function expectWorkerDeathNamed(command: (input: string) => string[], repeated: string): Promise<void> {
  const worker = (await startRpcWorker({ threads: 1, env: engineEnv })) as { endpoint: string; log(): string; kill(): Promise<void>; stop(): Promise<void> };
  const input = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-rpc-kill-")), "long.txt");
  fs.writeFileSync(input, fs.readFileSync(repeated, "utf8").repeat(20));
  try {
    const child = spawnCli([...command(input), "--rpc", worker.endpoint], { env: engineEnv });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdout!.resume();
    const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    // The pre-flight is the first client; the model's connection the second. Then let it score a while.
    while ((worker.log().match(/Accepted client connection/g) ?? []).length < 2) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await worker.kill();
    expect(await closed).toBe(1);
    const lines = stderr.trim().split("\n");
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error: RPC worker ${worker.endpoint.replace(/\./g, "\\.")} \\(it is not reachable: connection refused \\(nothing listens there\\)\\) went away during the run; llama\\.cpp: `));
  } finally {
    await worker.stop();
    fs.rmSync(path.dirname(input), { recursive: true, force: true });
  }
}

describe.skipIf(!rpcEngine)(`a worker killed mid-perplexity or mid-eval${engineSkip}`, { timeout: SLOW }, () => {
  it("perplexity: one clear error naming the worker, exit 1", async () => {
    await expectWorkerDeathNamed((text) => ["perplexity", bundledTinyModel, "-f", text, "-c", "128"], GOLDEN.perplexityText());
  }, SLOW);

  // eval took --rpc but ran in-process, where llama.cpp's abort took the whole CLI down (SIGABRT): it runs as the RPC child now, as every command with --rpc.
  it("eval hellaswag: one clear error naming the worker, exit 1", async () => {
    await expectWorkerDeathNamed((tasks) => ["eval", "hellaswag", bundledTinyModel, "-f", tasks, "--tasks", "2400"], path.join(repoRoot, "test", "fixtures", "eval", "hellaswag.txt"));
  }, SLOW);
});

describe.skipIf(!rpcEngine || !hasShared)(`a worker killed mid-run${engineSkip || (hasShared ? "" : ` [skipped: ${sharedSkipReason}]`)}`, { timeout: SLOW }, () => {
  it("run: one clear error naming the worker, exit 1, and the CLI's own process survives to say it", async () => {
    const worker = (await startRpcWorker({ threads: 1, env: engineEnv })) as { endpoint: string; kill(): Promise<void>; stop(): Promise<void> };
    try {
      // A random-weights model never stops by itself: generation runs until the worker is killed.
      const child = spawnCli(["run", sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf"), "--raw", "Once", "-n", "100000", "--temp", "0", "--rpc", worker.endpoint], { env: engineEnv });
      let stdout = "";
      let stderr = "";
      child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const closed = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once("close", (code, signal) => resolve([code, signal])));
      await new Promise<void>((resolve) => {
        child.stdout!.setEncoding("utf8").on("data", (d: string) => {
          stdout += d;
          if (stdout.length > 20) resolve();
        });
      });
      await worker.kill();
      const [code, signal] = await closed;
      expect(signal).toBeNull();
      expect(code).toBe(1);
      const lines = stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^error: RPC worker ${worker.endpoint.replace(/\./g, "\\.")} \\(it is not reachable: connection refused \\(nothing listens there\\)\\) went away during the run; llama\\.cpp: .*Restart the worker and run again$`));
    } finally {
      await worker.stop();
    }
  }, SLOW);
});
