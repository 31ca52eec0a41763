#!/usr/bin/env node
// Distributed inference over llama.cpp's RPC backend, on one machine (npm run bench:rpc):
//
//  1. `lmrun bench --rpc A,B` against llama.cpp's own `llama-bench --rpc A,B` (built from the same source,
//     scripts/llama-tools.mjs), the same two `lmrun rpc-server` workers on 127.0.0.1, INTERLEAVED
//     (llama-bench, lmrun, llama-bench, ...): median and best of the per-round means, and the ratio.
//  2. Network distance: a proxy in front of each worker adds 0, 1, 5 and 20 ms of round trip; generation
//     speed (tg) and prompt speed (pp) through it, to see how a LAN or a WAN between machines would cost.
//
//   npm run build && npm run bench:rpc -- [--rounds 3] [--reps 3] [--model path.gguf] [--rtts 0,1,5,20] [--no-compare]
//
// Needs an RPC engine build (`lmrun engine build --rpc`; LMRUN_ENGINES or LMRUN_HOME say where) and, for
// part 1, llama.cpp's tools (`npm run llama-tools`; part 1 is skipped without them).
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { loadAverage, median, printTable, repoRoot, sharedDir } from "./bench-common.mjs";
import { lmrunBin, startLatencyProxy, startRpcWorker } from "./rpc-workers.mjs";

const execFileAsync = promisify(execFile);
function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}
const rounds = Number(arg("rounds", "3"));
const reps = Number(arg("reps", "3"));
const pp = Number(arg("p", "128"));
const tg = Number(arg("n", "32"));
const rtts = arg("rtts", "0,1,5,20").split(",").map(Number);
const model = path.resolve(arg("model", path.join(sharedDir, "models", "llama2vocab-135m-shape-random-Q4_K_M.gguf")));
if (!fs.existsSync(model)) {
  console.error(`model not found: ${model} (give --model)`);
  process.exit(1);
}

async function lmrunBench(endpoints, extra = []) {
  const { stdout } = await execFileAsync(process.execPath, [lmrunBin, "bench", model, "--rpc", endpoints.join(","), "-p", String(pp), "-n", String(tg), "-r", String(reps), "-t", "1", "-o", "json", ...extra], {
    env: { ...process.env, NO_COLOR: "1" },
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout);
}

async function llamaBench(binary, endpoints) {
  const { stdout } = await execFileAsync(binary, ["-m", model, "--rpc", endpoints.join(","), "-p", String(pp), "-n", String(tg), "-r", String(reps), "-t", "1", "-o", "json"], { maxBuffer: 64 << 20 });
  return JSON.parse(stdout);
}

const rate = (records, kind) => records.find((r) => (kind === "pp" ? r.n_prompt > 0 && r.n_gen === 0 : r.n_gen > 0 && r.n_prompt === 0))?.avg_ts ?? NaN;

const workers = [];
const proxies = [];
const cleanup = async () => {
  for (const proxy of proxies.splice(0)) await proxy.close();
  for (const worker of workers.splice(0)) await worker.stop();
};
process.on("SIGINT", () => cleanup().then(() => process.exit(130)));

try {
  workers.push(await startRpcWorker({ threads: 1 }), await startRpcWorker({ threads: 1 }));
  const endpoints = workers.map((w) => w.endpoint);
  console.log(`model: ${path.basename(model)}; workers: ${endpoints.join(", ")} (lmrun rpc-server, 1 thread each); pp${pp}, tg${tg}, -r ${reps}, -t 1`);
  console.log(`load average before: ${loadAverage()} (other helpers share this 2-core machine: figures are noisy)`);

  let tools;
  if (!process.argv.includes("--no-compare")) try {
    const { ensureLlamaTools } = await import("./llama-tools.mjs");
    tools = await ensureLlamaTools();
  } catch (error) {
    console.log(`\npart 1 skipped: llama.cpp's tools are not available (${error.message.split("\n")[0]}); run npm run llama-tools`);
  }
  if (tools) {
    const samples = { lmrun: { pp: [], tg: [] }, llama: { pp: [], tg: [] } };
    let last;
    for (let round = 1; round <= rounds; round++) {
      const reference = await llamaBench(tools.llamaBench, endpoints);
      const ours = await lmrunBench(endpoints);
      samples.llama.pp.push(rate(reference, "pp"));
      samples.llama.tg.push(rate(reference, "tg"));
      samples.lmrun.pp.push(rate(ours, "pp"));
      samples.lmrun.tg.push(rate(ours, "tg"));
      last = { reference, ours };
      process.stderr.write(`round ${round}/${rounds}: llama-bench pp ${rate(reference, "pp").toFixed(1)} tg ${rate(reference, "tg").toFixed(1)}; lmrun pp ${rate(ours, "pp").toFixed(1)} tg ${rate(ours, "tg").toFixed(1)}\n`);
    }
    console.log(`\n1. lmrun bench --rpc vs llama-bench --rpc (same workers, interleaved, ${rounds} rounds; t/s)`);
    const rows = ["pp", "tg"].map((kind) => {
      const ref = samples.llama[kind];
      const ours = samples.lmrun[kind];
      return [`${kind}${kind === "pp" ? pp : tg}`, median(ref).toFixed(1), Math.max(...ref).toFixed(1), median(ours).toFixed(1), Math.max(...ours).toFixed(1), (median(ours) / median(ref)).toFixed(3)];
    });
    printTable(["test", "llama-bench median", "best", "lmrun median", "best", "lmrun/llama-bench"], rows);
    console.log(`backends column: llama-bench "${last.reference[0]?.backends}" / lmrun "${last.ours[0]?.backends}"; gpu_info: "${last.reference[0]?.gpu_info}" / "${last.ours[0]?.gpu_info}"`);
  }

  console.log(`\n2. network distance: a proxy adds a round-trip latency in front of each worker (lmrun bench --rpc, median of ${rounds} rounds; t/s)`);
  const rows = [];
  for (const rtt of rtts) {
    const fronted = [];
    for (const worker of workers) {
      const proxy = await startLatencyProxy({ upstreamPort: worker.port, rttMs: rtt });
      proxies.push(proxy);
      fronted.push(proxy.endpoint);
    }
    const ppRates = [];
    const tgRates = [];
    for (let round = 1; round <= rounds; round++) {
      try {
        const ours = await lmrunBench(fronted);
        ppRates.push(rate(ours, "pp"));
        tgRates.push(rate(ours, "tg"));
      } catch (error) {
        process.stderr.write(`rtt ${rtt} ms, round ${round}: ${String(error.stderr ?? error.message).trim()}\n`);
      }
    }
    for (const proxy of proxies.splice(0)) await proxy.close();
    const tgMedian = median(tgRates);
    rows.push([`${rtt} ms`, median(ppRates).toFixed(1), tgMedian.toFixed(1), (1000 / tgMedian).toFixed(1)]);
    process.stderr.write(`rtt ${rtt} ms: pp ${median(ppRates).toFixed(1)} tg ${tgMedian.toFixed(1)}\n`);
  }
  printTable(["round trip", `pp${pp} t/s`, `tg${tg} t/s`, "ms per generated token"], rows);
  console.log(`load average after: ${loadAverage()}`);
} finally {
  await cleanup();
}
void repoRoot;
