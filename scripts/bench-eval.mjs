// lmrun eval, side by side with its references, interleaved (A B A B ...) so machine noise hits both:
//
//   npm run bench:eval -- [--threads 2] [--repeat 3] [--tasks 100] [--models a.gguf,b.gguf] [--gen-model m.gguf] [--gen-tasks tasks.jsonl] [--max-tokens 32] [--parallel 4] [--gen-count 24] [--skip hellaswag|gen]
//
// 1. `lmrun eval hellaswag` vs llama.cpp's `llama-perplexity --hellaswag` (built by
//    scripts/build-llama-tools.sh from the llama.cpp source node-llama-cpp ships): same file, model,
//    tasks and threads; wall time of the whole process (load, tokenisation, scoring). Also checks
//    that both printed the same running table. Target: lmrun/llama at most 1.0.
// 2. `lmrun eval gen` (answers on parallel context sequences, one process) vs the same tasks one at a
//    time through `lmrun run` (one process per task, greedy, same -n): the speed-up; and
//    `lmrun eval gen --parallel 1` to separate the in-process gain from the parallel one.
// Needs `npm run build` first. Prints /proc/loadavg with the figures: these machines are shared.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureLlamaTools } from "./llama-tools.mjs";
import { loadAverage, lmrunBin, median, printTable, repoRoot, sharedModel, timeCommand } from "./bench-common.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const threads = option("threads", String(Math.min(2, os.availableParallelism())));
const repeat = Number(option("repeat", "3"));
const tasks = option("tasks", "100");
const skip = option("skip", "");
const hellaswagFile = path.join(repoRoot, "test", "fixtures", "eval", "hellaswag.txt");
const models = option("models", "stories260K-Q8_0.gguf,llama2vocab-135m-shape-random-Q4_K_M.gguf")
  .split(",")
  .map((m) => (m.includes("/") ? path.resolve(m) : sharedModel(m)));
const genModel = option("gen-model", "stories260K-Q8_0.gguf");
const genModelPath = genModel.includes("/") ? path.resolve(genModel) : sharedModel(genModel);
const genTasksFile = path.resolve(option("gen-tasks", path.join(repoRoot, "test", "fixtures", "eval", "gen-tasks.jsonl")));
const maxTokens = option("max-tokens", "32");
const parallel = option("parallel", "4");
const genCount = Number(option("gen-count", "24"));
if (!fs.existsSync(path.join(repoRoot, "dist", "entry.js"))) {
  console.error("run npm run build first");
  process.exit(1);
}
const env = { CI: "true", NO_COLOR: "1" };
const seconds = (runs) => `${(median(runs) / 1000).toFixed(2)} (${(Math.min(...runs) / 1000).toFixed(2)})`;
const tableRows = (text) => text.split("\n").filter((l) => /^\d+\t/.test(l));

async function checked(command, args) {
  const r = await timeCommand(command, args, { env });
  if (r.code !== 0) {
    console.error(`${path.basename(command)} ${args.join(" ")} failed (exit ${r.code}):\n${(r.stderr || r.stdout).slice(-1500)}`);
    process.exit(1);
  }
  return r;
}

console.log(`load average before: ${loadAverage()}; ${os.availableParallelism()} CPUs; -t ${threads}; ${repeat} interleaved rounds\n`);

if (skip !== "hellaswag") {
  const tools = await ensureLlamaTools();
  console.log(`llama-perplexity: ${tools.llamaPerplexity} (build ${tools.buildCommit})`);
  const rows = [];
  for (const model of models) {
    const llamaArgs = ["-m", model, "-f", hellaswagFile, "--hellaswag", "--hellaswag-tasks", tasks, "-t", threads];
    const lmrunArgs = [lmrunBin, "eval", "hellaswag", model, "-f", hellaswagFile, "--tasks", tasks, "-t", threads];
    const llama = [];
    const lmrun = [];
    const phases = [];
    let llamaRows = [];
    for (let r = 0; r < repeat; r++) {
      const a = await checked(tools.llamaPerplexity, llamaArgs);
      const b = await checked(process.execPath, [...lmrunArgs, "--json"]);
      llama.push(a.ms);
      lmrun.push(b.ms);
      const json = JSON.parse(b.stdout);
      phases.push({ load: json.loadSeconds, scoring: json.seconds });
      if (tableRows(a.stdout).length > llamaRows.length) llamaRows = tableRows(a.stdout);
      console.log(`${path.basename(model)} round ${r + 1}: llama-perplexity ${(a.ms / 1000).toFixed(2)} s, lmrun ${(b.ms / 1000).toFixed(2)} s (its load ${json.loadSeconds.toFixed(2)} s, scoring ${json.seconds.toFixed(2)} s; load avg ${loadAverage()})`);
    }
    // The table, once more in text mode (not timed). llama-perplexity's logger sometimes loses its last
    // line or two when it exits, so its rows are compared as printed.
    const text = tableRows((await checked(process.execPath, lmrunArgs)).stdout);
    const same = llamaRows.length >= Number(tasks) - 2 && llamaRows.every((row, i) => row === text[i]);
    const firstDifferent = llamaRows.findIndex((row, i) => row !== text[i]);
    if (firstDifferent >= 0) console.log(`  first row that differs (${firstDifferent + 1}):\n    llama-perplexity ${llamaRows[firstDifferent]}\n    lmrun            ${text[firstDifferent]}`);
    const med = (k) => median(phases.map((p) => p[k] * 1000));
    rows.push([path.basename(model), tasks, seconds(llama), seconds(lmrun), (median(lmrun) / median(llama)).toFixed(2), `${(med("load") / 1000).toFixed(2)} / ${(med("scoring") / 1000).toFixed(2)}`, same ? `yes (${llamaRows.length} rows)` : firstDifferent >= 0 ? `from row ${firstDifferent + 1}` : "NO"]);
  }
  console.log();
  printTable(["model", "tasks", "llama-perplexity s median (best)", "lmrun eval s median (best)", "lmrun/llama", "lmrun load / scoring s", "same table"], rows);
  console.log(`load average after: ${loadAverage()}\n`);
}

if (skip !== "gen") {
  const taskLines = fs.readFileSync(genTasksFile, "utf8").split("\n").filter((l) => l.trim() !== "").slice(0, genCount).map((l) => JSON.parse(l));
  // eval gen reads a file: the same first tasks, written next to the system's temp files.
  const genFile = path.join(os.tmpdir(), `lmrun-bench-eval-${process.pid}.jsonl`);
  fs.writeFileSync(genFile, taskLines.map((t) => JSON.stringify(t)).join("\n") + "\n");
  process.on("exit", () => fs.rmSync(genFile, { force: true }));
  const gen = [];
  const gen1 = [];
  const oneByOne = [];
  const common = ["-n", maxTokens, "--temp", "0", "-t", threads];
  for (let r = 0; r < repeat; r++) {
    gen.push((await checked(process.execPath, [lmrunBin, "eval", "gen", genModelPath, "-f", genFile, "--parallel", parallel, ...common])).ms);
    let total = 0;
    for (const task of taskLines) total += (await checked(process.execPath, [lmrunBin, "run", genModelPath, task.prompt, ...common])).ms;
    oneByOne.push(total);
    gen1.push((await checked(process.execPath, [lmrunBin, "eval", "gen", genModelPath, "-f", genFile, "--parallel", "1", ...common])).ms);
    console.log(`gen round ${r + 1}: eval gen --parallel ${parallel} ${(gen.at(-1) / 1000).toFixed(2)} s, ${taskLines.length} x lmrun run ${(total / 1000).toFixed(2)} s, eval gen --parallel 1 ${(gen1.at(-1) / 1000).toFixed(2)} s (load ${loadAverage()})`);
  }
  console.log();
  printTable(
    ["model", "tasks", "-n", `eval gen --parallel ${parallel} s`, "one by one (lmrun run) s", "speed-up", "eval gen --parallel 1 s"],
    [[path.basename(genModelPath), String(taskLines.length), maxTokens, seconds(gen), seconds(oneByOne), `${(median(oneByOne) / median(gen)).toFixed(1)}x`, seconds(gen1)]],
  );
  console.log(`load average after: ${loadAverage()}`);
}
