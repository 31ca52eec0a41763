// npm run bench:run — lmrun run against its peers, side by side, interleaved (A B A B …).
//  1. start-up: `lmrun --version` vs bare `node -e 0`                        (target ≤ 1.5x)
//  2. end-to-end: piped prompt on stories260K-Q8_0 vs `node-llama-cpp complete` (target ≤ 0.5x)
//  3. generation t/s on the 135M-shape model vs llama-bench tg128, 1 and 2 threads (target ≥ 0.85x)
//  4. chat-template start-up: a model's first run (node-llama-cpp resolves its chat wrapper) vs later runs (remembered)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { lmrunBin, loadAverage, median, printTable, repoRoot, sharedModel, timeCommand } from "./bench-common.mjs";

const rounds = Number(process.env.ROUNDS ?? 7);
// `npm run bench:run -- generation` (or startup, end-to-end) runs only those sections.
const sections = process.argv.slice(2);
const want = (name) => sections.length === 0 || sections.includes(name);
const node = process.execPath;
const env = { LMRUN_HOME: path.join(repoRoot, ".lmrun-bench-home"), NO_COLOR: "1" };
console.log(`# lmrun run benchmarks (${rounds} interleaved rounds; load average at start ${loadAverage()})\n`);

// 1. Start-up.
if (want("startup")) {
  const bare = [];
  const lmrun = [];
  for (let i = 0; i < rounds * 2; i++) {
    bare.push((await timeCommand(node, ["-e", "0"])).ms);
    lmrun.push((await timeCommand(node, [lmrunBin, "--version"], { env })).ms);
  }
  const b = median(bare);
  const l = median(lmrun);
  console.log("## start-up (median wall ms)\n");
  printTable(["command", "ms", "ratio"], [
    ["node -e 0", b.toFixed(1), "1.00"],
    ["lmrun --version", l.toFixed(1), (l / b).toFixed(2)],
  ]);
  console.log(`\nlmrun --version / node -e 0 = ${(l / b).toFixed(2)}x (target ≤ 1.5x)\n`);
}

// 2. End-to-end one-shot on the small model.
if (want("end-to-end")) {
  const model = sharedModel("stories260K-Q8_0.gguf");
  const nlcCli = path.join(repoRoot, "node_modules", "node-llama-cpp", "dist", "cli", "cli.js");
  // node-llama-cpp's complete has no one-shot mode: it prints the completion, then waits at a REPL
  // prompt. Its clock stops when the completion line is finished (the next "> " prompt appears).
  const nlcRun = (extra) =>
    timeCommand(node, [nlcCli, "complete", "--model", model, "--text", "Once upon a time", "--maxTokens", "32", ...extra], {
      until: (out) => /Completion: [^]*\n> /.test(out),
    });
  const lmrun = [];
  const nlcDefault = [];
  const nlcOneThread = [];
  for (let i = 0; i < rounds; i++) {
    const a = await timeCommand(node, [lmrunBin, "run", model, "--raw", "-n", "32"], { input: "Once upon a time\n", env });
    if (a.code !== 0) throw new Error(`lmrun failed: ${a.stderr}`);
    lmrun.push(a.ms);
    nlcOneThread.push((await nlcRun(["--threads", "1"])).ms);
    // Its default (threads = max(cores, 4)) is very slow on 2 cores: fewer rounds of it.
    if (i < Math.min(rounds, 3)) nlcDefault.push((await nlcRun([])).ms);
  }
  const l = median(lmrun);
  const n1 = median(nlcOneThread);
  const nd = median(nlcDefault);
  console.log("## end-to-end: `echo \"Once upon a time\" | lmrun run stories260K-Q8_0.gguf --raw -n 32` (median wall ms)\n");
  printTable(["command", "ms", "lmrun / this"], [
    ["lmrun run --raw -n 32 (default threads)", l.toFixed(0), "1.00"],
    ["node-llama-cpp complete --maxTokens 32 (its default threads)", nd.toFixed(0), (l / nd).toFixed(2)],
    ["node-llama-cpp complete --maxTokens 32 --threads 1", n1.toFixed(0), (l / n1).toFixed(2)],
  ]);
  console.log(`\nlmrun / node-llama-cpp = ${(l / nd).toFixed(2)}x with its defaults, ${(l / n1).toFixed(2)}x against it with 1 thread (target ≤ 0.5x)\n`);
}

// 3. Generation speed against llama-bench.
if (want("generation")) {
  const { ensureLlamaTools } = await import("./llama-tools.mjs");
  const tools = await ensureLlamaTools();
  const model = sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf");
  const rows = [];
  for (const threads of [1, 2]) {
    const lb = [];
    const lm = [];
    const ratios = [];
    for (let i = 0; i < rounds; i++) {
      const csv = execFileSync(tools.llamaBench, ["-m", model, "-p", "0", "-n", "128", "-t", String(threads), "-r", "3", "-o", "json"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
      lb.push(JSON.parse(csv)[0].avg_ts);
      const r = await timeCommand(node, [lmrunBin, "run", model, "Once upon a time", "-n", "128", "--temp", "0", "-t", String(threads), "--json"], { env });
      if (r.code !== 0) throw new Error(`lmrun failed: ${r.stderr}`);
      lm.push(JSON.parse(r.stdout).timings.generationTokensPerSecond);
      ratios.push(lm.at(-1) / lb.at(-1));
    }
    // The median of per-round ratios: robust to the machine's load drifting during the run.
    rows.push([threads, median(lb).toFixed(1), median(lm).toFixed(1), median(ratios).toFixed(2), `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`]);
  }
  // lmrun's default: prompt on every core, generation on the measured default thread count.
  const lmDefault = [];
  for (let i = 0; i < 3; i++) {
    const r = await timeCommand(node, [lmrunBin, "run", model, "Once upon a time", "-n", "128", "--temp", "0", "--json"], { env });
    lmDefault.push(JSON.parse(r.stdout).timings.generationTokensPerSecond);
  }
  console.log(`## generation: tokens/s on llama2vocab-135m-shape-random-Q4_K_M.gguf, 128 tokens (median)\n`);
  printTable(["threads", "llama-bench tg128 t/s", "lmrun run --json t/s", "ratio (median per round)", "range"], rows);
  console.log(`\nlmrun with its default threads: ${median(lmDefault).toFixed(1)} t/s; llama-bench build ${tools.buildCommit}; load average now ${loadAverage()}`);
}

// 4. Start-up on a chat-template model: the first run resolves the chat wrapper, later runs read it back.
if (want("chat-template")) {
  const model = sharedModel("llama2vocab-135m-shape-random-Q4_K_M.gguf");
  const warmHome = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-bench-warm-"));
  const args = [lmrunBin, "run", model, "Once upon a time", "-n", "16", "--temp", "0"];
  await timeCommand(node, args, { env: { ...env, LMRUN_HOME: warmHome } });
  const first = [];
  const later = [];
  for (let i = 0; i < rounds; i++) {
    const coldHome = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-bench-cold-"));
    first.push((await timeCommand(node, args, { env: { ...env, LMRUN_HOME: coldHome } })).ms);
    fs.rmSync(coldHome, { recursive: true, force: true });
    later.push((await timeCommand(node, args, { env: { ...env, LMRUN_HOME: warmHome } })).ms);
  }
  fs.rmSync(warmHome, { recursive: true, force: true });
  console.log("## chat-template start-up: `lmrun run llama2vocab-135m-shape-random-Q4_K_M.gguf \"Once upon a time\" -n 16` (median wall ms)\n");
  printTable(["run", "ms"], [
    ["first run of the model (chat wrapper resolved by node-llama-cpp)", median(first).toFixed(0)],
    ["later runs (chat wrapper remembered)", median(later).toFixed(0)],
  ]);
  console.log(`\nsaved per start: ${(median(first) - median(later)).toFixed(0)} ms\n`);
}
