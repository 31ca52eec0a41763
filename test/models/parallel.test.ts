import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { contiguousPrefix, planSegments, segmentsFit, type Segment } from "../../src/models/segments.js";
import { runCli, spawnCli, tempHome } from "../helpers/cli.js";
import { startFakeHf, sharedModelsRepo, withoutProxies, type FakeHf, type RecordedRequest } from "../helpers/hfServer.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const TINY = "llama-2-tiny-random.gguf"; // 1.7 MB: split in 4 with a 1 MB threshold
const ref = `hf:lmrun-test/stories/${TINY}`;

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function storeFile(home: string, file: string): string {
  return path.join(home, "models", "hf", "lmrun-test", "stories", file);
}

const cdnRequests = (hf: FakeHf): RecordedRequest[] => hf.requests.filter((r) => r.url.startsWith("/cdn/"));
const closedRanges = (hf: FakeHf): RecordedRequest[] => cdnRequests(hf).filter((r) => /^bytes=\d+-\d+$/.test(r.range ?? ""));

describe("segment plan", () => {
  it("tiles the file in nearly equal segments and finds the contiguous prefix", () => {
    const plan = planSegments(10, 4);
    expect(plan.map((s) => [s.start, s.end])).toEqual([[0, 2], [2, 5], [5, 7], [7, 10]]);
    expect(contiguousPrefix(plan)).toBe(0);
    plan[0]!.next = 2;
    plan[1]!.next = 4;
    plan[2]!.next = 7;
    expect(contiguousPrefix(plan)).toBe(4);
    plan[1]!.next = 5;
    expect(contiguousPrefix(plan)).toBe(7);
  });

  it("accepts a recorded plan only if it tiles the file and claims nothing past the partial", () => {
    const plan: Segment[] = [{ start: 0, end: 5, next: 3 }, { start: 5, end: 10, next: 8 }];
    expect(segmentsFit(plan, 10, 8)).toBe(true);
    expect(segmentsFit(plan, 10, 7)).toBe(false); // the partial is shorter than what segment 2 claims
    expect(segmentsFit(plan, 11, 8)).toBe(false); // does not cover the file
    expect(segmentsFit([{ start: 0, end: 5, next: 6 }, { start: 5, end: 10, next: 5 }], 10, 10)).toBe(false);
    expect(segmentsFit("nonsense", 10, 10)).toBe(false);
  });
});

describe.skipIf(!hasShared)(`parallel pull over several connections (${hasShared ? "shared models" : sharedSkipReason})`, () => {
  let hf: FakeHf;
  let home: string;
  const size = () => fs.statSync(sharedModel(TINY)).size;
  const env = (extra: Record<string, string> = {}) => ({
    ...withoutProxies,
    HF_ENDPOINT: hf.url,
    LMRUN_PULL_STALL_MS: "1500",
    LMRUN_PULL_CONNECTIONS: "4",
    LMRUN_PULL_SEGMENT_MIN_BYTES: "1000000",
    // Judge the first connection after its first batch, and call any speed slow: always go parallel.
    LMRUN_PULL_PROBE_MS: "0",
    LMRUN_PULL_PARALLEL_BELOW_MBPS: "1000000",
    ...extra,
  });

  beforeAll(async () => {
    hf = await startFakeHf(sharedModelsRepo(path.dirname(sharedModel(TINY))));
  });
  afterAll(async () => {
    await hf.close();
  });
  beforeEach(() => {
    hf.reset();
    home = tempHome();
  });

  it("a slow first connection hands the rest of the file to 4 connections; progress is summed and the sha256 is right", async () => {
    hf.faults.throttle = { chunkBytes: 64 * 1024, delayMs: 20 }; // ~3 MB/s: the first batch is a fraction of the file
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(cdnRequests(hf)[0]!.range).toBeUndefined();
    // Four closed ranges tile the rest of the file, from where the first connection was stopped.
    const ranges = closedRanges(hf)
      .map((r) => /^bytes=(\d+)-(\d+)$/.exec(r.range!)!.slice(1).map(Number) as [number, number])
      .sort((a, b) => a[0] - b[0]);
    expect(ranges).toHaveLength(4);
    const prefix = ranges[0]![0];
    expect(prefix).toBeGreaterThan(0);
    expect(prefix).toBeLessThan(size());
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1] + 1);
    expect(ranges.at(-1)![1]).toBe(size() - 1);
    expect(result.stdout).toContain("over 4 connections");
    const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = lines.at(-1)!;
    expect(done.files).toMatchObject([{ verifiedAgainst: "etag", sha256: sha256(sharedModel(TINY)) }]);
    expect(sha256(storeFile(home, TINY))).toBe(sha256(sharedModel(TINY)));
    expect(fs.existsSync(storeFile(home, TINY) + ".partial.json")).toBe(false);
  });

  it("a fast first connection is left alone: one request, no ranges", async () => {
    const result = await runCli(["pull", ref], { home, env: env({ LMRUN_PULL_PARALLEL_BELOW_MBPS: "0" }) });
    expect(result.code, result.stderr).toBe(0);
    expect(cdnRequests(hf)).toHaveLength(1);
    expect(hf.bytesServedFor(TINY)).toBe(size());
    expect(sha256(storeFile(home, TINY))).toBe(sha256(sharedModel(TINY)));
  });

  it("killed half way (SIGKILL), the next pull resumes every segment from its recorded offset", async () => {
    hf.faults.throttle = { chunkBytes: 16 * 1024, delayMs: 100 }; // ~160 KB/s per connection: ~2.7 s a segment
    const child = spawnCli(["pull", ref], { home, env: env() });
    await waitFor(() => hf.bytesServedFor(TINY) > size() * 0.6, 15_000);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    const final = storeFile(home, TINY);
    expect(fs.existsSync(final)).toBe(false);
    const meta = JSON.parse(fs.readFileSync(final + ".partial.json", "utf8")) as { segments: Segment[]; size: number };
    expect(meta.size).toBe(size());
    // The first connection's bytes, then four segments: every one had progress recorded, none finished.
    const open = meta.segments.filter((s) => s.next < s.end);
    expect(open).toHaveLength(4);
    for (const s of open) expect(s.next).toBeGreaterThan(s.start);
    hf.reset();
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(closedRanges(hf).map((r) => r.range).sort()).toEqual(open.map((s) => `bytes=${s.next}-${s.end - 1}`).sort());
    const left = meta.segments.reduce((sum, s) => sum + (s.end - s.next), 0);
    expect(hf.bytesServedFor(TINY)).toBe(left);
    expect(hf.bytesServedFor(TINY)).toBeLessThan(size());
    const done = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
    expect(done.files[0].resumedFrom).toBe(size() - left);
    expect(done.files[0].verifiedAgainst).toBe("etag");
    expect(sha256(final)).toBe(sha256(sharedModel(TINY)));
    expect(fs.readdirSync(path.dirname(final)).sort()).toEqual([TINY]);
  });

  it("Ctrl-C stops every segment and keeps the partial and its plan; the next pull finishes it", async () => {
    hf.faults.throttle = { chunkBytes: 16 * 1024, delayMs: 100 };
    const child = spawnCli(["pull", ref], { home, env: env() });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await waitFor(() => hf.bytesServedFor(TINY) > size() * 0.3, 15_000);
    child.kill("SIGINT");
    expect(await new Promise((r) => child.on("close", r))).toBe(130);
    const final = storeFile(home, TINY);
    const meta = JSON.parse(fs.readFileSync(final + ".partial.json", "utf8")) as { segments: Segment[] };
    expect(segmentsFit(meta.segments, size(), fs.statSync(final + ".partial").size)).toBe(true);
    // The bytes the segments wrote, not the sparse partial's length (which it used to report).
    const kept = Number(/pull interrupted with (\d+) bytes kept/.exec(stderr)?.[1]);
    expect(kept).toBe(meta.segments.reduce((sum, s) => sum + (s.next - s.start), 0));
    expect(kept).toBeLessThanOrEqual(fs.statSync(final + ".partial").size);
    expect(meta.segments.filter((s) => s.next < s.end).length).toBeGreaterThan(0);
    expect(fs.existsSync(final + ".lock")).toBe(false);
    hf.reset();
    const result = await runCli(["pull", ref], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(hf.bytesServedFor(TINY)).toBeLessThan(size());
    expect(sha256(final)).toBe(sha256(sharedModel(TINY)));
  });

  it("one segment's connection dropped half way is retried from that segment's progress", async () => {
    hf.faults.dropAfterBytes = { bytes: 200_000, closedRangeOnly: true };
    hf.faults.throttle = { chunkBytes: 64 * 1024, delayMs: 20 }; // segments well over 200 KB each
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('"event":"retry"');
    const ranges = closedRanges(hf);
    expect(ranges).toHaveLength(5); // 4 segments + the dropped one's retry
    const dropped = ranges.find((r) => r.bytesSent === 200_000)!;
    const from = Number(/^bytes=(\d+)-(\d+)$/.exec(dropped.range!)![1]);
    const end = /-(\d+)$/.exec(dropped.range!)![1];
    expect(ranges.at(-1)!.range).toBe(`bytes=${from + 200_000}-${end}`);
    // No byte of the segments was fetched twice (the first GET's body runs on a little past where it was stopped).
    const prefix = Math.min(...ranges.map((r) => Number(/^bytes=(\d+)-/.exec(r.range!)![1])));
    expect(ranges.reduce((sum, r) => sum + r.bytesSent, 0)).toBe(size() - prefix);
    expect(sha256(storeFile(home, TINY))).toBe(sha256(sharedModel(TINY)));
  });

  it("a server that ignores closed ranges: falls back to one connection from the contiguous prefix, no byte twice on disk", async () => {
    hf.faults.ignoreClosedRange = true;
    hf.faults.throttle = { chunkBytes: 64 * 1024, delayMs: 20 };
    const result = await runCli(["pull", ref, "--json"], { home, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("does not honour byte ranges");
    const last = cdnRequests(hf).at(-1)!;
    expect(last.range).toMatch(/^bytes=\d+-$/);
    const prefix = Number(/^bytes=(\d+)-$/.exec(last.range!)![1]);
    expect(prefix).toBeGreaterThan(0);
    expect(last.bytesSent).toBe(size() - prefix);
    expect(fs.statSync(storeFile(home, TINY)).size).toBe(size());
    expect(sha256(storeFile(home, TINY))).toBe(sha256(sharedModel(TINY)));
  });

  it("LMRUN_PULL_CONNECTIONS=1 downloads over one connection as before", async () => {
    const result = await runCli(["pull", ref, "--json"], { home, env: env({ LMRUN_PULL_CONNECTIONS: "1" }) });
    expect(result.code, result.stderr).toBe(0);
    expect(cdnRequests(hf)).toHaveLength(1);
    expect(cdnRequests(hf)[0]!.range).toBeUndefined();
    expect(hf.bytesServedFor(TINY)).toBe(size());
    expect(sha256(storeFile(home, TINY))).toBe(sha256(sharedModel(TINY)));
  });

  it("a file under the threshold is not split", async () => {
    const result = await runCli(["pull", ref], { home, env: env({ LMRUN_PULL_SEGMENT_MIN_BYTES: String(size() + 1) }) });
    expect(result.code, result.stderr).toBe(0);
    expect(closedRanges(hf)).toHaveLength(0);
    expect(sha256(storeFile(home, TINY))).toBe(sha256(sharedModel(TINY)));
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
