import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, spawnCli, tempHome } from "../helpers/cli.js";
import { hasShared, repoRoot, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const stories = sharedModel("stories260K-Q8_0.gguf");
const storiesSha256 = "5dbdd2da53ca5109f7d737fa7f977e845c5c0816069d291725e51d7be7757ac7";

interface Row {
  n_prompt: number;
  n_gen: number;
  n_threads: number;
  avg_ts: number;
  stddev_ts: number;
  samples_ts: number[];
  samples_ns: number[];
  model_type: string;
  build_commit: string;
  lmrun: { model_sha256: string; peak_rss_bytes: number; system: { node_llama_cpp: string } };
}

describe("lmrun bench: bad values are usage errors", () => {
  for (const args of [["-p", "0"], ["-t", "x"], ["-r", "0"], ["-o", "xml"], ["-fa", "maybe"]]) {
    it(`bench tiny ${args.join(" ")}`, async () => {
      const result = await runCli(["bench", "tiny", ...args]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

describe("lmrun bench: a bad model file", () => {
  it("is one line and exit 1, before anything is loaded", async () => {
    const result = await runCli(["bench", "no-such-model.gguf", "-r", "1"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^error: model file not found: .*no-such-model\.gguf/);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("lmrun info", () => {
  it("--json describes the CPU, RAM and which backends load", async () => {
    const result = await runCli(["info", "--json"]);
    expect(result.code).toBe(0);
    const info = JSON.parse(result.stdout) as {
      cpu: { model: string; logicalCores: number };
      ram: { totalBytes: number };
      activeBackend: string;
      backends: { name: string; loads: boolean }[];
      versions: { nodeLlamaCpp: string; llamaCppCommit: string };
    };
    expect(info.cpu.model.length).toBeGreaterThan(0);
    expect(info.cpu.logicalCores).toBeGreaterThan(0);
    expect(info.ram.totalBytes).toBeGreaterThan(0);
    expect(info.backends.find((b) => b.name === info.activeBackend)?.loads).toBe(true);
    expect(info.versions.nodeLlamaCpp).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.versions.llamaCppCommit).toMatch(/^[0-9a-f]{7}$/);
  });
});

describe.skipIf(!hasShared)(`lmrun bench on stories260K (${hasShared ? "real model" : sharedSkipReason})`, () => {
  it("a short real run: positive t/s, the asked-for repetitions, llama-bench's fields and the file's sha256", async () => {
    const result = await runCli(["bench", stories, "-r", "2", "-p", "32", "-n", "16", "-t", "1", "-o", "json"]);
    expect(result.code).toBe(0);
    const rows = JSON.parse(result.stdout) as Row[];
    expect(rows.map((r) => [r.n_prompt, r.n_gen, r.n_threads])).toEqual([
      [32, 0, 1],
      [0, 16, 1],
    ]);
    for (const row of rows) {
      expect(row.samples_ns).toHaveLength(2);
      expect(row.samples_ts).toHaveLength(2);
      expect(row.avg_ts).toBeGreaterThan(0);
      expect(row.samples_ts.every((t) => t > 0)).toBe(true);
      expect(row.model_type).toBe("llama ?B Q8_0");
      expect(row.build_commit).toMatch(/^[0-9a-f]{7}$/);
      expect(row.lmrun.model_sha256).toBe(storiesSha256);
      expect(row.lmrun.peak_rss_bytes).toBeGreaterThan(0);
    }
  });

  it("generation runs llama-bench's synchronous loop through lmrun's shim, also after a prompt and at depth; LMRUN_BENCH_DECODE=direct keeps the binding", async () => {
    const shimBuilt = process.platform === "linux" && fs.existsSync(path.join(repoRoot, "dist", "native", "threadpool.node"));
    const result = await runCli(["bench", stories, "-r", "2", "-p", "16", "-n", "24", "-pg", "16,8", "-d", "0,40", "-t", "1,2", "-o", "json"]);
    expect(result.code).toBe(0);
    const rows = JSON.parse(result.stdout) as (Row & { n_depth: number; lmrun: { decode_path: string } })[];
    // pp16, tg24 and pp16+tg8, each at depth 0 and 40, with 1 and 2 threads.
    expect(rows).toHaveLength(12);
    for (const row of rows) {
      expect(row.samples_ts.every((t) => t > 0)).toBe(true);
      expect(row.lmrun.decode_path).toBe(row.n_gen > 0 && shimBuilt ? "sync" : "direct");
    }
    const direct = await runCli(["bench", stories, "-r", "2", "-p", "0", "-n", "24", "-t", "1", "-o", "json"], { env: { LMRUN_BENCH_DECODE: "direct" } });
    expect((JSON.parse(direct.stdout) as { lmrun: { decode_path: string } }[])[0]!.lmrun.decode_path).toBe("direct");
  });

  it("the public-API fallback (LMRUN_BENCH_DECODE=public) measures the same tests and says which path ran", async () => {
    const result = await runCli(["bench", stories, "-r", "2", "-p", "32", "-n", "16", "-t", "1", "-o", "json"], { env: { LMRUN_BENCH_DECODE: "public" } });
    expect(result.code).toBe(0);
    const rows = JSON.parse(result.stdout) as (Row & { lmrun: { decode_path: string } })[];
    expect(rows.map((r) => [r.n_prompt, r.n_gen, r.lmrun.decode_path])).toEqual([
      [32, 0, "public"],
      [0, 16, "public"],
    ]);
    for (const row of rows) expect(row.samples_ts.every((t) => t > 0)).toBe(true);
  });

  it("md by default, in llama-bench's layout; jsonl and csv parse; a sweep adds rows", async () => {
    const md = await runCli(["bench", stories, "-r", "1", "-p", "16,32", "-n", "8", "-t", "1"]);
    expect(md.code).toBe(0);
    const lines = md.stdout.split("\n");
    expect(lines[0]).toBe("| model                          |       size |     params | backend    | threads |            test |                  t/s |");
    expect(lines.slice(2, 5).map((l) => l.split("|").map((c) => c.trim())[5] + " " + l.split("|").map((c) => c.trim())[6])).toEqual(["1 pp16", "1 pp32", "1 tg8"]);
    expect(lines[2]).toMatch(/^\| llama \?B Q8_0 {18}\| {3}0\.35 MiB \| {5}0\.29 M \| CPU {8}\| {7}1 \| {12}pp16 \| +\d+\.\d\d ± \d+\.\d\d \|$/);
    expect(md.stdout).toMatch(/\n\nbuild: [0-9a-f]{7} \(\d+\)\n$/);

    const jsonl = await runCli(["bench", stories, "-r", "2", "-p", "16", "-n", "0", "-t", "1", "-o", "jsonl"]);
    const parsed = jsonl.stdout.trim().split("\n").map((l) => JSON.parse(l) as Row);
    expect(parsed.map((r) => r.n_prompt)).toEqual([16]);

    const csv = await runCli(["bench", stories, "-r", "2", "-p", "16", "-n", "0", "-pg", "16,8", "-t", "1", "-o", "csv"]);
    const csvLines = csv.stdout.trim().split("\n");
    expect(csvLines).toHaveLength(3); // header, pp16, pp16+tg8
    const header = csvLines[0]!.split(",");
    const last = csvLines[2]!.slice(1, -1).split('","');
    expect(Number(last[header.indexOf("n_prompt")])).toBe(16);
    expect(Number(last[header.indexOf("n_gen")])).toBe(8);
  });

  it("--compare prints deltas against an earlier json run", async () => {
    const home = tempHome();
    const old = path.join(home, "old.json");
    const first = await runCli(["bench", stories, "-r", "2", "-p", "16", "-n", "8", "-t", "1", "-o", "json"], { home });
    fs.writeFileSync(old, first.stdout);
    const second = await runCli(["bench", stories, "-r", "2", "-p", "16", "-n", "8", "-t", "1", "--compare", old], { home });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/\| model +\| test +\| threads \| +old t\/s \| +new t\/s \| +delta \|/);
    expect(second.stdout).toMatch(/\| stories260K-Q8_0\.gguf \| pp16 +\| +1 \| +\d+\.\d\d \| +\d+\.\d\d \| +[+-]\d+\.\d%( \*)? +\|/);
    // The footnote explains a "*" only when there is one.
    expect(/ \* +\|/.test(second.stdout)).toBe(/\* beyond the noise/.test(second.stdout));
    // Tests the old run did not have are named, not dropped silently.
    const third = await runCli(["bench", stories, "-r", "2", "-p", "32", "-n", "8", "-t", "1", "--compare", old], { home });
    expect(third.code).toBe(0);
    expect(third.stderr).toMatch(/not in .*old\.json, so not compared: stories260K-Q8_0\.gguf pp32 \(1 threads\)/);
  });

  it("--prompt-file gives end-to-end TTFT, prompt and generation speed through the run path", async () => {
    const home = tempHome();
    const file = path.join(home, "prompt.txt");
    fs.writeFileSync(file, "Once upon a time there was a little girl who liked to play in the park with her dog.");
    const result = await runCli(["bench", stories, "--prompt-file", file, "-n", "8", "-r", "2", "-t", "1", "-o", "json"], { home });
    expect(result.code).toBe(0);
    const [row] = JSON.parse(result.stdout) as { prompt_tokens: number; ttft_ms: number[]; avg_prompt_ts: number; avg_gen_ts: number }[];
    expect(row!.prompt_tokens).toBeGreaterThan(10);
    expect(row!.ttft_ms).toHaveLength(2);
    expect(row!.avg_prompt_ts).toBeGreaterThan(0);
    expect(row!.avg_gen_ts).toBeGreaterThan(0);
    expect(result.stderr).toBe("");
    // A file longer than the context is cut, and says so; an empty one is refused (as run refuses an empty prompt).
    fs.writeFileSync(file, "Once upon a time there was a little girl. ".repeat(120));
    const long = await runCli(["bench", stories, "--prompt-file", file, "-n", "4", "-r", "1", "-t", "1", "-o", "json"], { home });
    expect(long.code).toBe(0);
    expect(long.stderr).toMatch(/the prompt file was cut to fit the 512-token context \(its first \d+ tokens dropped\)/);
    fs.writeFileSync(file, "  \n");
    const empty = await runCli(["bench", stories, "--prompt-file", file], { home });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--prompt-file .* is empty/);
  });

  it("--tune saves the fastest threads and batch size for the model in the settings", async () => {
    const home = tempHome();
    // The search space is narrowed to keep the test short; by default it is every thread count up to the cores and three batch sizes.
    const result = await runCli(["bench", stories, "--tune", "-t", "1", "-b", "64,128", "-p", "64", "-n", "16", "-r", "2", "-o", "json"], { home, timeoutMs: 120_000 });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/tuned stories260K-Q8_0\.gguf: threads \d+/);
    const settings = JSON.parse(fs.readFileSync(path.join(home, "config.json"), "utf8")) as { tuned: Record<string, { threads: number; batchSize: number }> };
    const tuned = settings.tuned["stories260K-Q8_0.gguf"]!;
    expect(tuned.threads).toBeGreaterThanOrEqual(1);
    expect(tuned.threads).toBe(1);
    expect([64, 128]).toContain(tuned.batchSize);
  }, 120_000);

  it("Ctrl-C prints the finished rows marked partial and exits 130", async () => {
    const child = spawnCli(["bench", stories, "-p", "16", "-n", "256", "-r", "400", "-t", "1"]);
    let stdout = "";
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const firstRow = new Promise<void>((resolve) => {
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        stdout += d;
        if (/pp16 \|/.test(stdout)) resolve();
      });
    });
    await firstRow;
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stdout).toMatch(/pp16 \|/);
    expect(stdout).not.toMatch(/tg256 \|/);
    expect(stdout).toMatch(/build: [0-9a-f]{7} \(\d+\)\npartial: interrupted after 1 of 2 tests\n$/);
    expect(stderr).toMatch(/partial/);
  }, 60_000);

  it("a closed stdout (| head) ends quietly: exit 0, nothing on stderr", async () => {
    // The reader takes the csv header and goes away (`| head -1`): the next row's write fails mid-run.
    const child = spawnCli(["bench", stories, "-p", "16", "-n", "256", "-r", "20", "-t", "1", "-o", "csv"]);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    await new Promise<void>((resolve) => {
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        if (d.includes("\n")) {
          child.stdout!.destroy();
          resolve();
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code).toBe(0);
    expect(stderr).toBe("");
  }, 60_000);
});
