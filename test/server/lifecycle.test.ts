import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { readLiveServerRecord, serverRecordPath, writeServerRecord } from "../../src/config/serverRecord.js";
import { cliPath, tempHome } from "../helpers/cli.js";
import { hasShared, repoRoot, sharedModel, sharedTitle } from "../helpers/shared.js";
import { request, startServe, until } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/** Models coming and going, address records, and stopping: each test runs its own short-lived server. */

async function ps(url: string): Promise<string[]> {
  return (await request(`${url}/api/ps`)).body.models.map((m: { name: string }) => m.name);
}


/** Starts a long NDJSON generation and resolves once its first piece arrived; `done` has the rest of the body. */
async function startLongStream(url: string, model: string, tokens = 400) {
  const res = await fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify({ model, prompt: "Once upon a time", options: { num_predict: tokens } }) });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let body = decoder.decode((await reader.read()).value);
  const done = (async () => {
    for (;;) {
      const { value, done: end } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (end) return body;
      body += decoder.decode(value);
    }
  })();
  return { first: body, done };
}

describe("lmrun serve: lifecycle", () => {
  it("keep-alive unloads an idle model, and the next request loads it again", async () => {
    const server = await startServe(["--keep-alive", "1s"]);
    try {
      const first = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "Hi", stream: false, options: { num_predict: 2 } } });
      expect(first.body.load_duration).toBeGreaterThan(0);
      await until(async () => /unloaded tiny \(keep-alive\)/.test(server.log()), "tiny unloaded by keep-alive");
      expect(await ps(server.url)).toEqual([]);
      const again = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "Hi", stream: false, keep_alive: -1, options: { num_predict: 2 } } });
      expect(again.body.load_duration).toBeGreaterThan(0);
      expect(await ps(server.url)).toEqual(["tiny"]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("--keep-alive 0: a model named at start is checked, not loaded (it would go at once); each request loads it and lets it go", async () => {
    const server = await startServe(["tiny", "--keep-alive", "0"]);
    try {
      expect(server.log()).toMatch(/tiny loads for each request \(--keep-alive 0\)/);
      expect(server.log()).not.toMatch(/loaded tiny/);
      expect(await ps(server.url)).toEqual([]);
      const answer = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "Hi", stream: false, options: { num_predict: 2 } } });
      expect(answer.body.load_duration).toBeGreaterThan(0);
      await until(async () => (await ps(server.url)).length === 0, "tiny unloaded after its request");
    } finally {
      expect(await server.stop()).toBe(0);
    }
    // A file that is not a model still stops serve at start, with one line.
    const notModel = path.join(os.tmpdir(), `lmrun-not-a-model-${process.pid}.gguf`);
    fs.writeFileSync(notModel, "not a model");
    try {
      const failed = spawnSync(process.execPath, [cliPath, "serve", notModel, "--keep-alive", "0", "--port", "0"], { env: { ...process.env, LMRUN_HOME: tempHome() }, encoding: "utf8", timeout: 60_000 });
      expect(failed.status).not.toBe(0);
      expect(failed.stderr.trim().split("\n")).toHaveLength(1);
      expect(failed.stderr).toMatch(/not-a-model/);
    } finally {
      fs.rmSync(notModel, { force: true });
    }
  });

  it.skipIf(!hasShared)(sharedTitle("--max-models 1 unloads the least recently used idle model, never a busy one"), async () => {
    const other = sharedModel("stories260K-Q4_0.gguf");
    const server = await startServe(["tiny", other, "--max-models", "1", "--parallel", "1", "--keep-alive", "-1"]);
    try {
      expect(await ps(server.url)).toEqual(["stories260K-Q4_0.gguf"]);
      const r = await request(`${server.url}/api/generate`, { json: { model: "tiny", prompt: "Hi", stream: false, options: { num_predict: 2 } } });
      expect(r.status).toBe(200);
      expect(await ps(server.url)).toEqual(["tiny"]);
      expect(server.log()).toMatch(/unloaded stories260K-Q4_0.gguf \(evicted\)/);
      // tiny is busy: the other model cannot take its place.
      const busy = await startLongStream(server.url, "tiny");
      const refused = await request(`${server.url}/api/generate`, { json: { model: "stories260K-Q4_0.gguf", prompt: "Hi", stream: false } });
      expect(refused.status).toBe(503);
      expect(refused.body.error).toMatch(/--max-models/);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(await ps(server.url)).toEqual(["tiny"]);
      void busy.done;
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("SIGTERM with a request in flight: stops accepting, ends the request, removes the address record, exits 0", async () => {
    const server = await startServe(["tiny", "--keep-alive", "-1"]);
    const record = serverRecordPath({ LMRUN_HOME: server.home });
    expect(JSON.parse(fs.readFileSync(record, "utf8"))).toMatchObject({ pid: server.child.pid, url: server.url });
    const stream = await startLongStream(server.url, "tiny");
    expect(stream.first).toMatch(/"done":false/);
    const home = server.home;
    const code = server.stop("SIGTERM");
    const body = await stream.done;
    expect(await code).toBe(0);
    // It finished in the grace period, or was cut at its end: either way the stream ended with a final line.
    const last = JSON.parse(body.trim().split("\n").at(-1)!);
    expect(last.done === true || typeof last.error === "string").toBe(true);
    // An answer the shutdown cut short never reads as a whole one (done_reason "stop").
    if (last.done === true) expect(last.lmrun.stopReason).not.toBe("abort");
    else expect(last.error).toMatch(/shutting down/);
    expect(server.log()).toMatch(/stopping \(1 request in flight/);
    expect(fs.existsSync(path.join(home, "server.json"))).toBe(false);
  });

  it("a second Ctrl-C quits at once (130)", async () => {
    // The second Ctrl-C must come while the first one's drain still waits for a request. A fast machine
    // can finish the request (or the tiny model reach its end of story) first and exit 0: then the
    // scenario is played again, as that run tested nothing.
    for (let attempt = 1; ; attempt++) {
      const server = await startServe(["tiny", "--keep-alive", "-1", "--ctx", "4096"]);
      await startLongStream(server.url, "tiny", 4000);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => server.child.once("exit", (code, signal) => resolve({ code, signal })));
      server.child.kill("SIGINT");
      await until(async () => /stopping/.test(server.log()), "the first Ctrl-C noticed", 10_000);
      await new Promise((r) => setTimeout(r, 400));
      if (server.child.exitCode !== null && attempt < 3) {
        expect(server.child.exitCode).toBe(0);
        await server.stop();
        continue;
      }
      server.child.kill("SIGINT");
      const { code, signal } = await exited;
      expect(code === 130 || signal === "SIGINT").toBe(true);
      // Quitting at once still removes the address record.
      expect(fs.existsSync(path.join(server.home, "server.json"))).toBe(false);
      await server.stop();
      return;
    }
  });

  it("a stale address record (dead pid) is ignored, and a new server replaces it", async () => {
    const home = tempHome("lmrun-serve-stale-");
    const env = { LMRUN_HOME: home };
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid!;
    await writeServerRecord({ pid: dead, url: "http://127.0.0.1:1", host: "127.0.0.1", port: 1, startedAt: new Date().toISOString(), version: "0.0.0" }, env);
    expect(readLiveServerRecord(env)).toBeUndefined();
    fs.writeFileSync(serverRecordPath(env), "{ not json");
    expect(readLiveServerRecord(env)).toBeUndefined();
    const server = await startServe([], { home });
    try {
      expect(readLiveServerRecord(env)).toMatchObject({ pid: server.child.pid, url: server.url });
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("serve --help loads neither node-llama-cpp nor ink", () => {
    const trace = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-trace-")), "imports.txt");
    const help = execFileSync(process.execPath, ["--import", path.join(repoRoot, "test/helpers/trace-imports.mjs"), cliPath, "serve", "--help"], {
      env: { ...process.env, LMRUN_TRACE_IMPORTS: trace },
      encoding: "utf8",
    });
    expect(help).toMatch(/--parallel <n>/);
    expect(help).toMatch(/--api-key <key>/);
    const imported = fs.readFileSync(trace, "utf8").split("\n");
    for (const heavy of ["node-llama-cpp", "ink", "react", "prom-client"]) expect(imported).not.toContain(heavy);
  });
});

describe("lmrun serve: waiting streams and --timeout", () => {
  it("a stream waiting for the only slot gets SSE comment pings, then its answer and [DONE]", async () => {
    const server = await startServe(["tiny", "--parallel", "1", "--ctx", "4096", "--sse-ping", "20ms", "--keep-alive", "-1"]);
    try {
      // The slot is busy for thousands of tokens; the waiting stream sees pings long before that ends.
      const busy = new AbortController();
      const first = await fetch(`${server.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "Once upon a time", options: { num_predict: 4000 } }), signal: busy.signal });
      const firstReader = first.body!.getReader();
      await firstReader.read();
      const waiting = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "Lily", max_tokens: 4, stream: true }) });
      const reader = waiting.body!.getReader();
      const decoder = new TextDecoder();
      let raw = "";
      while (!raw.includes(": ping\n\n")) raw += decoder.decode((await reader.read()).value);
      expect(raw).not.toMatch(/^data:/m); // nothing but pings while it waits
      busy.abort(); // the first client goes away: its slot is freed within a token
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        raw += decoder.decode(value);
      }
      const events = raw.split("\n\n").filter((e) => e.startsWith("data: "));
      expect(events.at(-1)).toBe("data: [DONE]");
      expect(JSON.parse(events[0]!.slice(6)).choices[0].text.length).toBeGreaterThan(0);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("Responses and Anthropic streams waiting for the slot get their keep-alives (an SSE comment, a ping event), then their whole event sequence", async () => {
    const server = await startServe(["tiny", "--parallel", "1", "--ctx", "4096", "--sse-ping", "20ms", "--keep-alive", "-1"]);
    try {
      const busy = new AbortController();
      const first = await fetch(`${server.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "Once upon a time", options: { num_predict: 4000 } }), signal: busy.signal });
      await first.body!.getReader().read();
      const open = async (path: string, body: object, keepAlive: string) => {
        const reader = (await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "tiny", stream: true, ...body }) })).body!.getReader();
        const decoder = new TextDecoder();
        let raw = "";
        while (!raw.includes(keepAlive)) raw += decoder.decode((await reader.read()).value);
        return { raw, rest: async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return raw;
            raw += decoder.decode(value);
          }
        } };
      };
      const responses = await open("/v1/responses", { input: "Lily", max_output_tokens: 4 }, ": ping\n\n");
      const messages = await open("/v1/messages", { max_tokens: 4, messages: [{ role: "user", content: "Lily" }] }, "event: ping\n");
      // Nothing but keep-alives while they wait.
      expect(responses.raw).not.toMatch(/^event:/m);
      expect(messages.raw.split("\n").filter((line) => line.startsWith("event:") && line !== "event: ping")).toEqual([]);
      busy.abort();
      const [responsesRaw, messagesRaw] = await Promise.all([responses.rest(), messages.rest()]);
      const names = (raw: string) => raw.split("\n").filter((line) => line.startsWith("event: ") && line !== "event: ping").map((line) => line.slice(7));
      expect(names(responsesRaw)[0]).toBe("response.created");
      expect(names(responsesRaw).at(-1)).toBe("response.incomplete");
      expect(names(messagesRaw)[0]).toBe("message_start");
      expect(names(messagesRaw).slice(-2)).toEqual(["message_delta", "message_stop"]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("--timeout cuts a long generation: the answer so far, finish reason length", async () => {
    const server = await startServe(["tiny", "--parallel", "1", "--ctx", "16384", "--timeout", "500ms", "--keep-alive", "-1"]);
    try {
      const answer = await request(`${server.url}/v1/completions`, { json: { model: "tiny", prompt: "Once upon a time", max_tokens: 16000, temperature: 0 } });
      expect(answer.status).toBe(200);
      expect(answer.body.choices[0].finish_reason).toBe("length");
      expect(answer.body.usage.completion_tokens).toBeGreaterThan(0);
      expect(answer.body.usage.completion_tokens).toBeLessThan(16000);
      // The server is fine afterwards.
      const next = await request(`${server.url}/v1/completions`, { json: { model: "tiny", prompt: "Hi", max_tokens: 3 } });
      expect(next.status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
