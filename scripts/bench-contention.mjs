// npm run bench:contention — token generation while other processes keep every core busy (issue 13).
//
// Two conditions, alternated round by round so that the machine's own drift hits both alike:
//   quiet: nothing started by this script;
//   busy:  one busy loop per core (`sh -c 'while :; do :; done'`), killed at the end of the pass.
// In each pass, in a rotating order: `lmrun run --json` with its default threads, `lmrun run -t k` for
// k = 1..cores, and llama-bench (same llama.cpp source, `npm run llama-tools`) with the thread count of
// lmrun's default. Generation t/s of N tokens (default 32) on the 135M-shape model.
// Targets: busy, lmrun's default >= 0.9x llama-bench's default and >= 0.8x lmrun's best -t that round;
// quiet, lmrun's default >= 0.85x llama-bench's. The output is a Markdown section ready for the README.
//
//   npm run bench:contention -- [--rounds 3] [--tokens 32] [--model FILE] [--conditions quiet,busy] [--llama-bench PATH]
// (--llama-bench: an existing llama-bench of the same source, instead of `npm run llama-tools`)
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { lmrunBin, loadAverage, median, printTable, repoRoot, sharedModel, timeCommand } from "./bench-common.mjs";
import { ensureLlamaTools } from "./llama-tools.mjs";

const { values: options } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    tokens: { type: "string", default: "32" },
    model: { type: "string" },
    conditions: { type: "string", default: "quiet,busy" },
    "llama-bench": { type: "string" },
  },
});
const rounds = Number(options.rounds);
const tokens = Number(options.tokens);
const conditions = options.conditions.split(",");
const model = options.model ? path.resolve(options.model) : sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf");
const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
const env = { LMRUN_HOME: path.join(repoRoot, ".lmrun-bench-home"), NO_COLOR: "1" };
// A collapsed run (many threads on busy cores) can take many minutes; it is reported as such, not waited for.
const COMMAND_TIMEOUT_MS = Number(process.env.COMMAND_TIMEOUT_S ?? 120) * 1000;

const tools = options["llama-bench"] ? { llamaBench: path.resolve(options["llama-bench"]), buildCommit: "given with --llama-bench" } : await ensureLlamaTools();

// ---- busy loops, always cleaned up ----
let loops = [];
function startLoops() {
  loops = Array.from({ length: cores }, () => spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" }));
}
function stopLoops() {
  for (const loop of loops) loop.kill("SIGKILL");
  loops = [];
}
process.on("exit", stopLoops);
// Interrupted: the rounds finished so far are still reported (marked partial).
let finishedRounds = 0;
const results = {}; // condition -> test name -> [{ts, used, note}] per round
const loadSeen = {}; // condition -> load averages at the start of each pass
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    stopLoops();
    if (finishedRounds > 0) report(true);
    process.exit(signal === "SIGINT" ? 130 : 143);
  });
}

/** lmrun run's generation t/s (NaN if it failed or timed out) and the threads its tokens ran with. */
async function lmrunRun(threads) {
  const args = [lmrunBin, "run", model, "Once upon a time", "--raw", "-n", String(tokens), "--temp", "0", "--json"];
  if (threads !== undefined) args.push("-t", String(threads));
  const r = await timeCommand(process.execPath, args, { env, timeoutMs: COMMAND_TIMEOUT_MS });
  if (r.code !== 0) return { ts: Number.NaN, note: r.code === "timeout" ? `> ${COMMAND_TIMEOUT_MS / 1000} s` : r.stderr.trim().split("\n").at(-1) };
  const json = JSON.parse(r.stdout);
  return { ts: json.timings.generationTokensPerSecond, threads: json.load.threads, used: json.load.generationThreads };
}

async function llamaBench(threads) {
  const r = await timeCommand(tools.llamaBench, ["-m", model, "-p", "0", "-n", String(tokens), "-r", "1", "-t", String(threads), "-o", "json"], {
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
  if (r.code !== 0) return { ts: Number.NaN, note: r.code === "timeout" ? `> ${COMMAND_TIMEOUT_MS / 1000} s` : `exit ${r.code}` };
  return { ts: JSON.parse(r.stdout)[0].avg_ts };
}

// lmrun's default thread count here (what llama-bench is given, "same threads").
const probe = await lmrunRun(undefined);
if (!Number.isFinite(probe.ts)) throw new Error(`lmrun run failed: ${probe.note}`);
const defaultThreads = probe.threads;
const threadCounts = Array.from({ length: cores }, (_, i) => i + 1);

const tests = [
  { name: "lmrun default", run: () => lmrunRun(undefined) },
  ...threadCounts.map((t) => ({ name: `lmrun -t ${t}`, run: () => lmrunRun(t) })),
  { name: `llama-bench -t ${defaultThreads}`, run: () => llamaBench(defaultThreads) },
];

for (const condition of conditions) {
  results[condition] = Object.fromEntries(tests.map((t) => [t.name, []]));
  loadSeen[condition] = [];
}
const startedLoad = loadAverage();
console.error(`bench:contention: ${rounds} rounds, ${tokens} tokens, ${cores} cores, lmrun default ${defaultThreads} threads; load average ${startedLoad}`);
for (let round = 0; round < rounds; round++) {
  // Alternate which condition goes first, and rotate the order of the tools.
  const order = round % 2 === 0 ? conditions : [...conditions].reverse();
  for (const condition of order) {
    if (condition === "busy") {
      startLoops();
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    loadSeen[condition].push(loadAverage());
    try {
      const shift = round % tests.length;
      for (const test of [...tests.slice(shift), ...tests.slice(0, shift)]) {
        const result = await test.run();
        results[condition][test.name][round] = result;
        console.error(`  round ${round + 1} ${condition} ${test.name}: ${Number.isFinite(result.ts) ? `${result.ts.toFixed(1)} t/s` : result.note}`);
      }
    } finally {
      stopLoops();
    }
  }
  finishedRounds = round + 1;
}
report(false);

// ---- report ----
function report(partial) {
  const fmt = (v) => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : "n/a");
  const finite = (values) => values.filter(Number.isFinite);
  const med = (values) => (finite(values).length ? median(finite(values)) : Number.NaN);
  const bound = tokens / (COMMAND_TIMEOUT_MS / 1000);
  /** A run cut by the timeout counts as the highest rate it could have had. */
  const bounded = (result) =>
    result === undefined ? Number.NaN : Number.isFinite(result.ts) ? result.ts : String(result.note).startsWith(">") ? bound : Number.NaN;

  console.log(`## \`npm run bench:contention\` (${new Date().toISOString().slice(0, 10)})${partial ? ` — partial: interrupted after ${finishedRounds} of ${rounds} rounds` : ""}\n`);
  const load = conditions.map((c) => `${c} ${loadSeen[c].map((l) => l.split(" ")[0]).join("/")}`).join("; ");
  console.log(
    `${os.cpus()[0]?.model ?? "CPU"}, ${cores} cores; ${path.basename(model)}, ${tokens} generated tokens ` +
      `(lmrun run --json vs llama-bench -p 0 -n ${tokens} -r 1, llama.cpp build ${tools.buildCommit}); ${finishedRounds} interleaved rounds; ` +
      `busy = ${cores} busy-loop processes. Load average at the start ${startedLoad}, at the end ${loadAverage()} (per pass: ${load}).\n`,
  );
  const rows = [];
  for (const condition of conditions) {
    for (const test of tests) {
      const perRound = results[condition][test.name].slice(0, finishedRounds);
      const values = perRound.map((r) => r?.ts ?? Number.NaN);
      const each = perRound.map((r) => (r && Number.isFinite(r.ts) ? fmt(r.ts) : (r?.note ?? "n/a"))).join(", ");
      rows.push([condition, test.name, fmt(med(values)), fmt(Math.max(...finite(values))), each, test.name === "lmrun default" ? describeUsed(perRound) : ""]);
    }
  }
  printTable(["machine", "what", "t/s (median)", "best", "each round", "threads the tokens ran with"], rows);

  /** Median of per-round ratios: robust to the load drifting between rounds. */
  const ratio = (condition, numerator, denominator) => {
    const per = [];
    for (let round = 0; round < finishedRounds; round++) {
      const a = numerator(results[condition], round);
      const b = denominator(results[condition], round);
      if (Number.isFinite(a) && Number.isFinite(b) && b > 0) per.push(a / b);
    }
    return { median: per.length ? median(per) : Number.NaN, range: per.length ? `${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)}` : "n/a" };
  };
  const lmDefault = (r, round) => r["lmrun default"][round]?.ts;
  const lbDefault = (r, round) => bounded(r[`llama-bench -t ${defaultThreads}`][round]);
  const lmBest = (r, round) => Math.max(...threadCounts.map((t) => bounded(r[`lmrun -t ${t}`][round])).filter(Number.isFinite));
  const targets = [];
  if (conditions.includes("busy")) {
    targets.push(["busy: lmrun default / llama-bench default", ratio("busy", lmDefault, lbDefault), 0.9]);
    targets.push(["busy: lmrun default / lmrun's best -t that round", ratio("busy", lmDefault, lmBest), 0.8]);
  }
  if (conditions.includes("quiet")) {
    targets.push(["quiet: lmrun default / llama-bench default", ratio("quiet", lmDefault, lbDefault), 0.85]);
    targets.push(["quiet: lmrun default / lmrun's best -t that round", ratio("quiet", lmDefault, lmBest), undefined]);
  }
  console.log("");
  printTable(
    ["ratio", "median of per-round ratios", "range", "target", "met"],
    targets.map(([name, r, target]) => [
      name,
      Number.isFinite(r.median) ? r.median.toFixed(2) : "n/a",
      r.range,
      target === undefined ? "" : `≥ ${target}`,
      target === undefined ? "" : r.median >= target ? "yes" : "**no**",
    ]),
  );
  console.log(
    `\nA run cut at ${COMMAND_TIMEOUT_MS / 1000} s (COMMAND_TIMEOUT_S) generated under ${fmt(bound)} t/s; a ratio against it uses ` +
      "that bound, so it is a lower bound for lmrun's default.",
  );
}

function describeUsed(perRound) {
  const total = {};
  for (const r of perRound) for (const [threads, count] of Object.entries(r?.used ?? {})) total[threads] = (total[threads] ?? 0) + count;
  const all = Object.values(total).reduce((a, b) => a + b, 0);
  return Object.entries(total)
    .map(([threads, count]) => `${threads}: ${Math.round((100 * count) / all)}%`)
    .join(", ");
}
