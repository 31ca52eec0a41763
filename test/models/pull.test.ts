import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli, spawnCli, tempHome } from "../helpers/cli.js";
import { startFakeHf, sharedModelsRepo, withoutProxies, type FakeHf } from "../helpers/hfServer.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const FILE = "stories260K-Q8_0.gguf";
const BIG = "stories260K-f32.gguf"; // 1.2 MB: slow enough to interrupt when throttled

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function storeFile(home: string, file: string, repo = "lmrun-test/stories"): string {
  return path.join(home, "models", "hf", ...repo.split("/"), file);
}

/** Every file under a directory (to prove nothing partial sits at a final path). */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.relative(dir, path.join(d.parentPath, d.name)));
}

describe.skipIf(!hasShared)(`lmrun pull against a fake Hugging Face (${hasShared ? "shared models" : sharedSkipReason})`, () => {
  let hf: FakeHf;
  let home: string;
  const env = () => ({ ...withoutProxies, HF_ENDPOINT: hf.url, LMRUN_PULL_STALL_MS: "1500" });

  beforeAll(async () => {
    hf = await startFakeHf(sharedModelsRepo(path.dirname(sharedModel(FILE))));
  });
  afterAll(async () => {
    await hf.close();
  });
  beforeEach(() => {
    hf.reset();
    home = tempHome();
  });

  it("pulls hf:USER/REPO/FILE, verifies it against X-Linked-Etag and records it in the manifest", async () => {
    const result = await runCli(["pull", `hf:lmrun-test/stories/${FILE}`, "--json"], { home, env: env() });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = lines.at(-1)!;
    expect(done.event).toBe("done");
    expect(done.sizeBytes).toBe(fs.statSync(sharedModel(FILE)).size);
    expect((done.files as Array<{ verifiedAgainst: string }>)[0]!.verifiedAgainst).toBe("etag");
    expect(lines.some((l) => l.event === "progress")).toBe(true);
    const final = storeFile(home, FILE);
    expect(sha256(final)).toBe(sha256(sharedModel(FILE)));
    const manifest = JSON.parse(fs.readFileSync(path.join(home, "models", "manifest.json"), "utf8"));
    expect(manifest.files).toHaveLength(1);
    expect(manifest.files[0]).toMatchObject({ file: `hf/lmrun-test/stories/${FILE}`, refs: [`hf:lmrun-test/stories/${FILE}`], sha256: sha256(sharedModel(FILE)), size: fs.statSync(sharedModel(FILE)).size });
    expect(hf.unknown).toEqual([]);
    // A second pull transfers nothing.
    const again = await runCli(["pull", `hf:lmrun-test/stories/${FILE}`], { home, env: env() });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("already pulled");
    expect(hf.bytesServedFor(FILE)).toBe(fs.statSync(sharedModel(FILE)).size);
  });

  it("a local path is only 'nothing to pull' when it is a model file (missing, a directory, not GGUF), and an unreachable hub is named: one line, exit 1", async () => {
    const home = tempHome();
    for (const [ref, message] of [
      ["./no-such-model.gguf", /model file not found/],
      [os.tmpdir(), /is a directory, not a model file/],
      ["package.json", /not a GGUF model file/],
    ] as const) {
      const result = await runCli(["pull", ref, "--json"], { home });
      expect(result.code).toBe(1);
      // --json: the model's one result line says it failed, and why.
      expect(JSON.parse(result.stdout)).toMatchObject({ event: "error", model: ref, error: expect.stringMatching(message) });
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
    // A Hugging Face endpoint that does not answer: say which host, for what, and what to check.
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const offline = await runCli(["pull", "hf:someone/some-repo:Q4_K_M"], { home, env: { HF_ENDPOINT: `http://127.0.0.1:${closed}`, ...withoutProxies } });
    expect(offline.code).toBe(1);
    expect(offline.stderr.trim().split("\n")).toHaveLength(1);
    expect(offline.stderr).toMatch(new RegExp(`cannot reach 127.0.0.1:${closed} to list the files of someone/some-repo: .*ECONNREFUSED.*Check the network connection`));
    const tiny = await runCli(["pull", "tiny"], { home });
    expect(tiny.code).toBe(0);
    expect(tiny.stdout).toMatch(/^tiny is bundled with lmrun: /);
  });

  it("a catalogue name resolves to its repo, file and pinned revision, and is checked against the catalogue", async () => {
    // The fake serves other bytes under the catalogue's file name: verification must refuse them.
    hf.addFile("Qwen", "Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", sharedModel(FILE));
    const result = await runCli(["pull", "qwen2.5:0.5b"], { home, env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/qwen2.5-0.5b-instruct-q4_k_m.gguf failed verification \(sha256 mismatch: expected 74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db, got [0-9a-f]{64}\); the bad download was deleted/);
    expect(hf.requests[0]!.url).toBe("/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/9217f5db79a29953eb74d5343926648285ec7e67/qwen2.5-0.5b-instruct-q4_k_m.gguf");
    expect(filesUnder(path.join(home, "models")).filter((f) => f.includes("qwen"))).toEqual([]);
    const typo = await runCli(["pull", "lama3.2:1b"], { home, env: env() });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/unknown model "lama3.2:1b"\. Did you mean llama3.2:1b/);
  });

  it("a split GGUF pulls every part; the first is the entrypoint", async () => {
    hf.addFile("lmrun-test", "split", "m-Q8_0-00001-of-00002.gguf", sharedModel(FILE));
    hf.addFile("lmrun-test", "split", "m-Q8_0-00002-of-00002.gguf", sharedModel("stories260K-Q4_0.gguf"));
    const result = await runCli(["pull", "hf:lmrun-test/split:Q8_0", "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    const done = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
    expect(done.files.map((f: { file: string }) => f.file)).toEqual(["hf/lmrun-test/split/m-Q8_0-00001-of-00002.gguf", "hf/lmrun-test/split/m-Q8_0-00002-of-00002.gguf"]);
    expect(done.path).toBe(path.join(home, "models", "hf", "lmrun-test", "split", "m-Q8_0-00001-of-00002.gguf"));
    expect(sha256(storeFile(home, "m-Q8_0-00002-of-00002.gguf", "lmrun-test/split"))).toBe(sha256(sharedModel("stories260K-Q4_0.gguf")));
  });

  it("picks the file of a quant with hf:USER/REPO:QUANT and checks it against the API's LFS hash", async () => {
    const result = await runCli(["pull", "hf:lmrun-test/stories-GGUF:q4_0", "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    const done = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
    expect(done.files[0].verifiedAgainst).toBe("api");
    expect(sha256(storeFile(home, "stories260K-Q4_0.gguf", "lmrun-test/stories-GGUF"))).toBe(sha256(sharedModel("stories260K-Q4_0.gguf")));
    expect(hf.requests.some((r) => r.url === "/api/models/lmrun-test/stories-GGUF/tree/main")).toBe(true);
  });
});

describe.skipIf(!hasShared)(`pull faults: resume, corruption, HTTP errors, locks, disk full (${hasShared ? "shared models" : sharedSkipReason})`, () => {
  let hf: FakeHf;
  let home: string;
  const env = () => ({ ...withoutProxies, HF_ENDPOINT: hf.url, LMRUN_PULL_STALL_MS: "1000", LMRUN_PULL_MAX_WAIT_MS: "300" });
  const bigSize = () => fs.statSync(sharedModel(BIG)).size;
  const ref = `hf:lmrun-test/stories/${BIG}`;

  beforeAll(async () => {
    hf = await startFakeHf(sharedModelsRepo(path.dirname(sharedModel(FILE))));
  });
  afterAll(async () => {
    await hf.close();
  });
  beforeEach(() => {
    hf.reset();
    home = tempHome();
  });

  it("a pull killed half way leaves only a .partial, and the next pull resumes with Range and transfers less than the file", async () => {
    hf.faults.throttle = { chunkBytes: 32 * 1024, delayMs: 40 }; // ~1.5 s for 1.2 MB
    const child = spawnCli(["pull", ref], { home, env: env() });
    const final = storeFile(home, BIG);
    // Kill once about 40% has been served.
    await waitFor(() => hf.bytesServedFor(BIG) > bigSize() * 0.4, 10_000);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    expect(fs.existsSync(final)).toBe(false);
    const partial = fs.statSync(final + ".partial").size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(bigSize());
    hf.faults = {};
    const servedBefore = hf.bytesServedFor(BIG);
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    const resumedRequest = hf.requests.filter((r) => r.url.startsWith("/cdn/")).at(-1)!;
    expect(resumedRequest.range).toBe(`bytes=${partial}-`);
    const servedNow = hf.bytesServedFor(BIG) - servedBefore;
    expect(servedNow).toBe(bigSize() - partial);
    expect(servedNow).toBeLessThan(bigSize());
    expect(sha256(final)).toBe(sha256(sharedModel(BIG)));
    const done = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
    expect(done.files[0].resumedFrom).toBe(partial);
    expect(filesUnder(path.join(home, "models")).sort()).toEqual(["hf/lmrun-test/stories/stories260K-f32.gguf", "manifest.json"]);
  });

  it("Ctrl-C keeps the partial, says how to resume and exits 130", async () => {
    hf.faults.throttle = { chunkBytes: 32 * 1024, delayMs: 40 };
    const child = spawnCli(["pull", ref], { home, env: env() });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await waitFor(() => hf.bytesServedFor(BIG) > bigSize() * 0.3, 10_000);
    child.kill("SIGINT");
    const code = await new Promise((r) => child.on("close", r));
    expect(code).toBe(130);
    expect(stderr).toMatch(/pull interrupted with \d+ bytes kept: run `lmrun pull hf:lmrun-test\/stories\/stories260K-f32.gguf` again to resume/);
    const final = storeFile(home, BIG);
    expect(fs.existsSync(final)).toBe(false);
    expect(fs.statSync(final + ".partial").size).toBeGreaterThan(0);
    expect(fs.existsSync(final + ".lock")).toBe(false);
  });

  it("a connection dropped half way is resumed within the same pull", async () => {
    hf.faults.dropAfterBytes = { bytes: 500_000 };
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(sha256(storeFile(home, BIG))).toBe(sha256(sharedModel(BIG)));
    const cdn = hf.requests.filter((r) => r.url.startsWith("/cdn/"));
    expect(cdn).toHaveLength(2);
    expect(cdn[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(hf.bytesServedFor(BIG)).toBe(bigSize());
    expect(result.stdout).toContain('"event":"retry"');
  });

  it("wrong bytes fail verification: the bad data is deleted, nothing reaches the final path, exit 1", async () => {
    hf.faults.corruptAt = 1234;
    const result = await runCli(["pull", ref], { home, env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/sha256 mismatch: expected [0-9a-f]{64}, got [0-9a-f]{64}.*deleted/);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(filesUnder(path.join(home, "models")).filter((f) => f.includes("stories"))).toEqual([]);
  });

  it("401 says to set HF_TOKEN; the token is sent to the endpoint but not to the CDN", async () => {
    hf.faults.status = { code: 401 };
    const denied = await runCli(["pull", ref], { home, env: env() });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/HTTP 401.*HF_TOKEN/);
    hf.reset();
    const ok = await runCli(["pull", ref], { home, env: { ...env(), HF_TOKEN: "hf_secret" } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(hf.requests.find((r) => r.url.includes("/resolve/"))!.authorization).toBe("Bearer hf_secret");
    expect(hf.requests.find((r) => r.url.startsWith("/cdn/"))!.authorization).toBeUndefined();
  });

  it("404 lists the files the repo has", async () => {
    const result = await runCli(["pull", "hf:lmrun-test/stories-GGUF/stories260K-Q2_K.gguf"], { home, env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("lmrun-test/stories-GGUF has no file stories260K-Q2_K.gguf (HTTP 404)");
    expect(result.stderr).toContain("It has: stories260K-Q8_0.gguf, stories260K-Q4_0.gguf, stories260K-f32.gguf");
    // Nothing was kept, so no empty directory for the repo is left in the store.
    expect(fs.existsSync(path.join(home, "models", "hf", "lmrun-test", "stories-GGUF"))).toBe(false);
    const quant = await runCli(["pull", "hf:lmrun-test/stories-GGUF:Q2_K"], { home, env: env() });
    expect(quant.code).toBe(2);
    expect(quant.stderr).toMatch(/has no Q2_K GGUF file. It offers: Q8_0, Q4_0, F32/);
  });

  it("429 waits (Retry-After) and retries", async () => {
    hf.faults.status = { code: 429, times: 2, headers: { "retry-after": "0.2" } };
    const started = performance.now();
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(performance.now() - started).toBeGreaterThan(400);
    expect(hf.requests.filter((r) => r.status === 429)).toHaveLength(2);
    expect(sha256(storeFile(home, BIG))).toBe(sha256(sharedModel(BIG)));
  });

  it("a server that ignores Range: the resume restarts from zero instead of appending", async () => {
    hf.faults.dropAfterBytes = { bytes: 400_000 };
    hf.faults.ignoreRange = true;
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("ignored Range");
    expect(fs.statSync(storeFile(home, BIG)).size).toBe(bigSize());
    expect(sha256(storeFile(home, BIG))).toBe(sha256(sharedModel(BIG)));
  });

  it("a stalled connection is dropped after the stall timeout and resumed", async () => {
    hf.faults.stallAfterBytes = { bytes: 300_000 };
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("stalled");
    const cdn = hf.requests.filter((r) => r.url.startsWith("/cdn/"));
    expect(cdn[1]!.range).toBe("bytes=300000-");
    expect(sha256(storeFile(home, BIG))).toBe(sha256(sharedModel(BIG)));
  });

  it("two concurrent pulls of the same file both end with one verified file; one waits on the lock", async () => {
    hf.faults.throttle = { chunkBytes: 32 * 1024, delayMs: 40 }; // ~1.5 s: the second process surely finds the lock
    const [a, b] = await Promise.all([runCli(["pull", ref, "--json"], { home, env: env() }), runCli(["pull", ref, "--json"], { home, env: env() })]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout + b.stdout).toContain('"event":"wait-lock"');
    expect(hf.bytesServedFor(BIG)).toBe(bigSize());
    expect(sha256(storeFile(home, BIG))).toBe(sha256(sharedModel(BIG)));
    const manifest = JSON.parse(fs.readFileSync(path.join(home, "models", "manifest.json"), "utf8"));
    expect(manifest.files).toHaveLength(1);
  });

  it("a stale lock of a dead process is taken over", async () => {
    const final = storeFile(home, FILE);
    fs.mkdirSync(path.dirname(final), { recursive: true });
    fs.writeFileSync(final + ".lock", JSON.stringify({ pid: 2 ** 22 + 12345, hostname: (await import("node:os")).hostname(), startedAt: "2020-01-01T00:00:00Z" }));
    const result = await runCli(["pull", `hf:lmrun-test/stories/${FILE}`], { home, env: env(), timeoutMs: 15_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(fs.existsSync(final + ".lock")).toBe(false);
    expect(sha256(final)).toBe(sha256(sharedModel(FILE)));
  });

  it("goes through HTTP_PROXY, except for hosts in NO_PROXY", async () => {
    const http = await import("node:http");
    const seen: string[] = [];
    const proxy = http.createServer((req, res) => {
      seen.push(req.url ?? "");
      const upstream = http.request(req.url!, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as import("node:net").AddressInfo).port}`;
    try {
      const result = await runCli(["pull", `hf:lmrun-test/stories/${FILE}`], { home, env: { ...env(), HTTP_PROXY: proxyUrl, NO_PROXY: "localhost" } });
      expect(result.code, result.stderr).toBe(0);
      // The resolve request went through the proxy; the CDN host (localhost) was exempt.
      expect(seen).toEqual([`${hf.url}/lmrun-test/stories/resolve/main/${FILE}`]);
      expect(sha256(storeFile(home, FILE))).toBe(sha256(sharedModel(FILE)));
    } finally {
      proxy.close();
    }
  });

  it.skipIf(!fs.existsSync("/dev/full"))("disk full (ENOSPC) fails at once with a clear message and no retries", async () => {
    const final = storeFile(home, FILE);
    fs.mkdirSync(path.dirname(final), { recursive: true });
    fs.symlinkSync("/dev/full", final + ".partial"); // every write to it fails with ENOSPC
    const result = await runCli(["pull", `hf:lmrun-test/stories/${FILE}`], { home, env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: no space left on the disk holding .*stories260K-Q8_0\.gguf\.partial.*Free some space/);
    expect(hf.requests.filter((r) => r.url.startsWith("/cdn/"))).toHaveLength(1);
    expect(fs.existsSync(final)).toBe(false);
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
