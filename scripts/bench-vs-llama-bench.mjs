#!/usr/bin/env node
// lmrun bench against llama.cpp's own llama-bench, built from the llama.cpp source node-llama-cpp ships
// (scripts/llama-tools.mjs builds it once, cached outside the repo). Both run the same tests on the same
// models and thread counts, INTERLEAVED (llama-bench, lmrun, llama-bench, lmrun, ...) so that machine noise
// hits both alike; each round is one full `-r` run of each tool. Prints both tools' tables from the last
// round, then per test the median and best of the per-round means and the ratio lmrun / llama-bench.
//
//   npm run build && npm run bench:vs-llama-bench -- [--rounds 3] [--reps 5] [--threads 1,2] [--models a.gguf,b.gguf]
//     [--no-prebuilt-kernels] [--no-probe]
//
// Besides the -march=native llama-bench (the reference), it runs a llama-bench built with dynamically
// loaded backends next to node-llama-cpp's own prebuilt CPU kernels (needs patchelf): lmrun against that
// one is the cost of the binding alone.
//
// Accuracy target (issue 6): pp512 within 5 %, tg128 within 10 % (then 5 %).
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ensureLlamaTools, ensurePrebuiltKernelBench } from "./llama-tools.mjs";

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const sharedModels = path.resolve(repoRoot, "..", "shared", "models");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const rounds = Number(arg("rounds", "3"));
const probe = !process.argv.includes("--no-probe");
const reps = Number(arg("reps", "5"));
const threadsList = arg("threads", "1,2").split(",").map(Number);
const pp = Number(arg("p", "512"));
const tg = Number(arg("n", "128"));
const models = arg("models", "stories260K-Q8_0.gguf,llama2vocab-135m-shape-random-Q4_K_M.gguf")
  .split(",")
  .map((m) => (m.includes("/") ? path.resolve(m) : path.join(sharedModels, m)));

for (const model of models) {
  if (!fs.existsSync(model)) {
    console.error(`model not found: ${model} (this script needs ../shared/models or --models paths)`);
    process.exit(1);
  }
}
const cli = path.join(repoRoot, "bin", "lmrun.js");
if (!fs.existsSync(path.join(repoRoot, "dist", "entry.js"))) {
  console.error("dist/ is missing: run `npm run build` first");
  process.exit(1);
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function runJson(file, args, env) {
  const { stdout } = await execFileAsync(file, args, { maxBuffer: 64 << 20, env: { ...process.env, ...env }, timeout: 20 * 60_000 });
  return JSON.parse(stdout);
}

async function runMd(file, args, env) {
  const { stdout } = await execFileAsync(file, args, { maxBuffer: 64 << 20, env: { ...process.env, ...env }, timeout: 20 * 60_000 });
  return stdout;
}

const tools = await ensureLlamaTools();
console.log(`llama-bench: ${tools.llamaBench} (build ${tools.buildCommit} (${tools.buildNumber}), -march=native)`);
// A second llama-bench on node-llama-cpp's prebuilt CPU kernels separates what the binding costs from
// what a native build gains (--no-prebuilt-kernels skips it).
let prebuilt;
if (!process.argv.includes("--no-prebuilt-kernels")) {
  try {
    prebuilt = await ensurePrebuiltKernelBench();
    console.log(`llama-bench on node-llama-cpp's prebuilt CPU kernels: ${prebuilt.llamaBench}`);
  } catch (error) {
    console.log(`(no llama-bench on the prebuilt kernels: ${error.message})`);
  }
}
console.log(`lmrun: node ${cli}`);
console.log(`machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} logical cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log(`method: ${rounds} interleaved rounds x (-p ${pp} -n ${tg} -r ${reps}), threads ${threadsList.join(",")}\n`);

const lmrunEnv = { CI: "true", NO_COLOR: "1" };
/** results[model][threads][test] = { llamaBench: number[], lmrun: number[] } (one mean per round) */
const results = new Map();
const lastTables = { llamaBench: "", lmrun: "" };

for (const model of models) {
  for (const threads of threadsList) {
    const common = ["-p", String(pp), "-n", String(tg), "-r", String(reps), "-t", String(threads)];
    const key = `${path.basename(model)}|${threads}`;
    results.set(key, { pp: { llamaBench: [], lmrun: [], prebuilt: [] }, tg: { llamaBench: [], lmrun: [], prebuilt: [] } });
    const toolsInRound = prebuilt ? ["llamaBench", "prebuilt", "lmrun"] : ["llamaBench", "lmrun"];
    for (let round = 0; round < rounds; round++) {
      // Interleave, rotating who goes first so no tool always runs on a warmer machine.
      const order = toolsInRound.map((_, i) => toolsInRound[(i + round) % toolsInRound.length]);
      for (const tool of order) {
        const records =
          tool === "llamaBench"
            ? await runJson(tools.llamaBench, ["-m", model, ...common, "-o", "json"])
            : tool === "prebuilt"
              ? await runJson(prebuilt.llamaBench, ["-m", model, ...common, "-o", "json"], prebuilt.env)
              : await runJson(process.execPath, [cli, "bench", model, ...common, "-o", "json"], lmrunEnv);
        for (const r of records) {
          const test = r.n_gen === 0 ? "pp" : "tg";
          results.get(key)[test][tool].push(r.avg_ts);
        }
        process.stderr.write(`  ${path.basename(model)} t=${threads} round ${round + 1}/${rounds} ${tool}: ${records.map((r) => r.avg_ts.toFixed(1)).join(" / ")}\n`);
      }
    }
  }
}

// One markdown table of each, from a final short interleaved pass, so the layouts can be compared by eye.
const tableArgs = ["-p", String(pp), "-n", String(tg), "-r", "2", "-t", threadsList.join(",")];
lastTables.llamaBench = await runMd(tools.llamaBench, [...models.flatMap((m) => ["-m", m]), ...tableArgs]);
lastTables.lmrun = await runMd(process.execPath, [cli, "bench", ...models, ...tableArgs], lmrunEnv);
console.log("llama-bench:\n" + lastTables.llamaBench);
console.log("lmrun bench:\n" + lastTables.lmrun);

// Each round runs the two tools back to back, so the ratio within a round cancels most of the machine's drift;
// the median of those per-round ratios is the figure the target is checked against.
console.log(`ratios (lmrun / llama-bench) over ${rounds} interleaved rounds; t/s are the median (best) of the per-round means:\n`);
console.log("| model | threads | test | llama-bench t/s | lmrun t/s | median per-round ratio | ratio of bests | target | llama-bench on prebuilt kernels t/s | lmrun / it (median per-round) |");
console.log("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
for (const [key, tests] of results) {
  const [model, threads] = key.split("|");
  for (const [test, target] of [["pp", 0.05], ["tg", 0.1]]) {
    const a = tests[test].llamaBench;
    const b = tests[test].lmrun;
    if (a.length === 0 || b.length === 0) continue;
    const ratio = median(b.map((value, i) => value / a[i]));
    const bestRatio = Math.max(...b) / Math.max(...a);
    const name = test === "pp" ? `pp${pp}` : `tg${tg}`;
    const ok = Math.abs(1 - ratio) <= target;
    const c = tests[test].prebuilt;
    const prebuiltCells = c.length > 0 ? `${median(c).toFixed(2)} (${Math.max(...c).toFixed(2)}) | ${median(b.map((value, i) => value / c[i])).toFixed(3)}` : "- | -";
    console.log(
      `| ${model} | ${threads} | ${name} | ${median(a).toFixed(2)} (${Math.max(...a).toFixed(2)}) | ${median(b).toFixed(2)} (${Math.max(...b).toFixed(2)}) | ${ratio.toFixed(3)} | ${bestRatio.toFixed(3)} | ±${target * 100}% ${ok ? "met" : "MISSED"} | ${prebuiltCells} |`,
    );
  }
}

if (probe) {
  // Where tg's time goes on the tiny model: llama-bench's per-token time, lmrun's default (synchronous
  // decodes through lmrun's shim), its direct native path through the binding (one asynchronous call per
  // token) and node-llama-cpp's public sequence API, and the binding's own cost of one asynchronous
  // decode call that does no work (an empty batch: llama_decode returns at once, the promise rejects).
  const tiny = models[0];
  const per = (ts) => 1e6 / ts;
  const lb = [];
  const sync = [];
  const direct = [];
  const pub = [];
  for (let round = 0; round < rounds; round++) {
    const args = ["-p", "0", "-n", String(tg), "-r", String(reps), "-t", "1"];
    lb.push((await runJson(tools.llamaBench, ["-m", tiny, ...args, "-o", "json"]))[0].avg_ts);
    sync.push((await runJson(process.execPath, [cli, "bench", tiny, ...args, "-o", "json"], lmrunEnv))[0].avg_ts);
    direct.push((await runJson(process.execPath, [cli, "bench", tiny, ...args, "-o", "json"], { ...lmrunEnv, LMRUN_BENCH_DECODE: "direct" }))[0].avg_ts);
    pub.push((await runJson(process.execPath, [cli, "bench", tiny, ...args, "-o", "json"], { ...lmrunEnv, LMRUN_BENCH_DECODE: "public" }))[0].avg_ts);
  }
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.disabled, maxThreads: 0, progressLogs: false });
  const model = await llama.loadModel({ modelPath: tiny });
  const context = await model.createContext({ contextSize: 256, batchSize: 512, threads: { ideal: 1, min: 1 } });
  const addon = context._ctx;
  const emptyCall = [];
  for (let round = 0; round < 5; round++) {
    const n = 2000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      addon.initBatch(1);
      try {
        await addon.decodeBatch();
      } catch {
        // expected: nothing to decode
      }
    }
    emptyCall.push(Number(process.hrtime.bigint() - start) / n / 1000);
  }
  await context.dispose();
  await model.dispose();
  console.log(`\nwhere tg${tg} time goes on ${path.basename(tiny)}, 1 thread (median of ${rounds} rounds, microseconds per token):`);
  console.log(`  llama-bench (C++, llama_decode in a loop):           ${per(median(lb)).toFixed(1)} us  (${median(lb).toFixed(0)} t/s)`);
  console.log(`  lmrun bench (synchronous decodes through the shim):  ${per(median(sync)).toFixed(1)} us  (${median(sync).toFixed(0)} t/s)`);
  console.log(`  lmrun, LMRUN_BENCH_DECODE=direct (async per token): ${per(median(direct)).toFixed(1)} us  (${median(direct).toFixed(0)} t/s)`);
  console.log(`  lmrun via node-llama-cpp's public sequence API:      ${per(median(pub)).toFixed(1)} us  (${median(pub).toFixed(0)} t/s)`);
  console.log(`  one empty async decode call through the binding:     ${median(emptyCall).toFixed(1)} us  (median of 5 x 2000)`);
  console.log(`  => lmrun's extra per token: ${(per(median(sync)) - per(median(lb))).toFixed(1)} us (${(per(median(direct)) - per(median(lb))).toFixed(1)} us through the binding, whose async call round trip is ~${median(emptyCall).toFixed(1)} us)`);
}
