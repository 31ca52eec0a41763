import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module shared with the benchmark script
import { startRpcWorker } from "../../scripts/rpc-workers.mjs";
import { runCli } from "../helpers/cli.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { request, startServe, until, type ServeProcess } from "../server/helpers.js";
import { GOLDEN } from "./golden.js";
import { engineEnv, engineSkip, holdRpcWorker, rpcEngine } from "./helpers.js";

/**
 * `lmrun serve --rpc`: the public server forwards to a child `lmrun serve` that runs the models on a
 * real `lmrun rpc-server` worker on 127.0.0.1; the worker is killed mid-stream and restarted here.
 * Needs an engine build with llama.cpp's RPC backend; without one these tests skip and say how to make it.
 */
/** Several processes on two busy cores: generous limits (a slow machine is slow, not a failure). */
const SLOW = 180_000;
const KEY = "serve-rpc-test-key-0123456789";

type Worker = { endpoint: string; port: number; log(): string; kill(): Promise<void>; stop(): Promise<void> };

/** The processes whose parent is `pid` (Linux; RPC is Linux-only in lmrun), zombies left out. */
function childPids(pid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) === pid && state !== "Z") pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

const raw = { model: "tiny", prompt: "Once upon a time", raw: true, stream: false, options: { num_predict: 48, temperature: 0, seed: 1 } };
const chat = { model: "tiny", messages: [{ role: "user" as const, content: "Lily had a red ball." }], max_tokens: 32, temperature: 0, seed: 3 };

describe.skipIf(!rpcEngine)(`serve --rpc on a worker on 127.0.0.1${engineSkip}`, { timeout: SLOW }, () => {
  let worker: Worker;
  let server: ServeProcess;
  let plain: ServeProcess;

  beforeAll(async () => {
    worker = (await startRpcWorker({ threads: 1, env: engineEnv })) as Worker;
    [server, plain] = await Promise.all([
      startServe(["tiny", "--rpc", worker.endpoint, "--api-key", KEY, "--parallel", "2"], { env: engineEnv }),
      startServe(["tiny", "--gpu", "cpu", "--parallel", "2"]),
    ]);
  }, SLOW);
  afterAll(async () => {
    await Promise.all([server?.stop("SIGKILL"), plain?.stop(), worker?.stop()]);
  });

  it("answers as serve without --rpc, and /api/generate as llama-completion --rpc; the key, ps and /health go through it", async () => {
    expect(server.log()).toMatch(new RegExp(`listening on http://127\\.0\\.0\\.1:\\d+ \\(2 slots per model, run by a child process for the RPC worker ${worker.endpoint}, API key required\\)`));
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const answer = await client.chat.completions.create(chat);
    const expected = await new OpenAI({ baseURL: `${plain.url}/v1`, apiKey: "unused", maxRetries: 0 }).chat.completions.create(chat);
    expect(answer.choices[0]!.message.content!.length).toBeGreaterThan(20);
    expect(answer.choices[0]!.message.content).toBe(expected.choices[0]!.message.content);

    const generated = await request(`${server.url}/api/generate`, { json: raw, headers: { authorization: `Bearer ${KEY}` } });
    expect(generated.status).toBe(200);
    expect((generated.body as { response: string }).response.trimEnd()).toBe(GOLDEN.runText.trimEnd());

    // The public server checks the key (the child has its own, from its environment).
    const refused = await request(`${server.url}/api/generate`, { json: raw });
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: "a valid API key is required: send Authorization: Bearer KEY (or x-api-key: KEY)" });
    expect((await request(`${server.url}/health`)).body).toEqual({ status: "ok" });
    const ps = await runCli(["ps", "--json"], { home: server.home, env: { LMRUN_API_KEY: KEY } });
    expect(ps.code, ps.stderr).toBe(0);
    expect((JSON.parse(ps.stdout) as { models: { name: string }[] }).models.map((m) => m.name)).toEqual(["tiny"]);

    // One access-log line per request (the child's, with the model and tokens), none twice.
    // 5 prompt tokens: BOS and "▁Once ▁upon ▁a ▁time", as llama-completion counts them.
    expect(server.log().match(/POST \/api\/generate 200 model="tiny" tokens=5\+48 /g)).toHaveLength(1);
    expect(server.log().match(/POST \/v1\/chat\/completions 200/g)).toHaveLength(1);
    expect(server.log()).toMatch(/POST \/api\/generate 401 /);
    // The child's key is not on any command line.
    for (const pid of childPids(server.child.pid!)) expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toMatch(/[0-9a-f]{48}/);
  });

  it("SIGTERM: exit 0, and the model process is gone", async () => {
    const children = childPids(server.child.pid!);
    expect(children).toHaveLength(1);
    expect(await server.stop("SIGTERM")).toBe(0);
    expect(children.filter(alive)).toEqual([]);
  });
});

describe.skipIf(!rpcEngine)(`serve --rpc and a busy worker${engineSkip}`, { timeout: SLOW }, () => {
  it("at start: one clear line naming the worker, exit 1; on a request: a 503 in the API's shape and a line on stderr", async () => {
    const worker = (await startRpcWorker({ threads: 1, env: engineEnv })) as Worker;
    const holder = await holdRpcWorker(worker.port);
    try {
      const r = await runCli(["serve", "tiny", "--port", "0", "--rpc", worker.endpoint], { env: engineEnv, timeoutMs: SLOW - 10_000 });
      expect(r.code).toBe(1);
      const busy = `worker ${worker.endpoint} accepted the connection but did not answer the RPC hello within 5 s: it is busy with another client (a worker serves one client at a time)`;
      expect(r.stderr).toBe(`error: ${busy}. Wait until the other client is done, or start another worker\n`);

      // No model on the command line: the server starts, and the load a request asks for meets the busy worker.
      const server = await startServe(["--rpc", worker.endpoint], { env: engineEnv });
      try {
        const answer = await request(`${server.url}/v1/completions`, { json: { model: "tiny", prompt: "Once", max_tokens: 2 } });
        expect(answer.status).toBe(503);
        expect(answer.body).toEqual({ error: { message: `${busy}. Wait until the other client is done, or start another worker`, type: "server_busy", param: null, code: "rpc_worker_busy" } });
        expect(server.log()).toContain(`lmrun serve: cannot load tiny: ${busy}\n`);
        expect(await server.stop()).toBe(0);
      } finally {
        await server.stop("SIGKILL");
      }
    } finally {
      holder.destroy();
      await worker.stop();
    }
  });
});

describe.skipIf(!rpcEngine || !hasShared)(`serve --rpc when the worker dies mid-stream${engineSkip || (hasShared ? "" : ` [skipped: ${sharedSkipReason}]`)}`, { timeout: SLOW }, () => {
  // A random-weights model never stops by itself: the stream runs until the worker is killed.
  const model = sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf");
  const name = path.basename(model);
  let worker: Worker;
  let server: ServeProcess;

  beforeAll(async () => {
    worker = (await startRpcWorker({ threads: 1, env: engineEnv })) as Worker;
    server = await startServe([model, "--rpc", worker.endpoint, "-c", "2048", "--parallel", "1"], { env: engineEnv });
  }, SLOW);
  afterAll(async () => {
    await Promise.all([server?.stop("SIGKILL"), worker?.stop()]);
  });

  it("the request ends with an error naming the worker, the server stays up, and serves again once the worker is back", async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: name, messages: [{ role: "user", content: "Once" }], max_tokens: 1500, temperature: 0, stream: true });
    let chunks = 0;
    let failure: Error | undefined;
    // Bounded: a hang fails here, not at the test's timeout.
    const bound = setTimeout(() => stream.controller.abort(), 90_000);
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content && ++chunks === 3) await worker.kill();
      }
    } catch (error) {
      failure = error as Error;
    } finally {
      clearTimeout(bound);
    }
    const endpoint = worker.endpoint.replace(/\./g, "\\.");
    expect(chunks).toBeGreaterThanOrEqual(3);
    expect(failure?.message).toMatch(new RegExp(`^RPC worker ${endpoint} \\(it is not reachable: connection refused \\(nothing listens there\\)\\) went away during the run; llama\\.cpp: `));

    // The server lives; one line on stderr names the worker; /health says no model process is up.
    expect(server.child.exitCode).toBeNull();
    await until(async () => /went away/.test(server.log()), "the supervisor's line");
    expect(server.log().match(new RegExp(`^lmrun serve: RPC worker ${endpoint} .* went away during the run; .*The next request starts the model process again$`, "gm"))).toHaveLength(1);
    expect(await request(`${server.url}/health`)).toMatchObject({ status: 503, body: { status: "no model process: the next request starts one" } });

    // The worker still gone: the next request's pre-flight names it, in ollama's error shape here.
    const generate = { model: name, prompt: "Once", stream: false, options: { num_predict: 4, temperature: 0 } };
    const refused = await request(`${server.url}/api/generate`, { json: generate });
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual({ error: `worker ${worker.endpoint} is not reachable: connection refused (nothing listens there). Start it with \`lmrun rpc-server\` on that machine, or fix the address` });
    expect(server.child.exitCode).toBeNull();

    // The worker back on its port: the next request starts a new model process and is answered.
    worker = (await startRpcWorker({ threads: 1, env: engineEnv, port: worker.port })) as Worker;
    const again = await request(`${server.url}/api/generate`, { json: generate });
    expect(again.status, again.text).toBe(200);
    expect((again.body as { eval_count: number }).eval_count).toBe(4);
    expect(await request(`${server.url}/health`)).toMatchObject({ status: 200, body: { status: "ok" } });
  });

  it("a supervisor killed with SIGKILL takes its model process with it (the child sees its stdin close)", async () => {
    const children = childPids(server.child.pid!);
    expect(children).toHaveLength(1);
    await server.stop("SIGKILL");
    await until(async () => !alive(children[0]!), "the model process to stop", 30_000);
  });
});
