// npm run bench:serve — `lmrun serve` against llama-server built from the same llama.cpp source, side by
// side in one run: same model, same slots, same context per slot, same prompts and token counts,
// temperature 0, requests interleaved (A B A B ...) over several rounds; median (and best) quoted.
//  1. one client: TTFT and generation t/s (streaming /v1/completions)            (target ≥ 0.9x llama-server)
//  2. four clients at once on four slots: aggregate generated t/s                (target ≥ 0.9x llama-server, ≥ 1.7x lmrun's 1 client)
//  3. a shell loop of `lmrun run MODEL "..." -n 16` against the warm server: time per call above the
//     server's own request time, vs a bare `node -e 0`                          (target ≤ 2x)
//  4. server RSS with 4 slots vs the model file + KV cache + 150 MB
//  5. a conversation re-sent with one more turn: second-turn TTFT vs the first (prefix cache)
//  6. `lmrun batch` of 16 prompts (in-process --parallel 4, and through the warm server) vs the same
//     prompts through `lmrun run` one by one (in-process, each call loading the model, as without a server)
// Usage: npm run bench:serve [-- MODEL_FILE_NAME ...]   (ROUNDS=5, LOOP=50, TOKENS=64, THREADS=2 by default;
//        SECTIONS=throughput,turns,memory,loop,batch picks parts: a loaded machine makes the whole run long)
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { lmrunBin, loadAverage, median, printTable, sharedModel, timeCommand } from "./bench-common.mjs";
import { ensureLlamaTools } from "./llama-tools.mjs";

const rounds = Number(process.env.ROUNDS ?? 5);
const loopCalls = Number(process.env.LOOP ?? 50);
const tokens = Number(process.env.TOKENS ?? 64);
const sections = (process.env.SECTIONS ?? "throughput,turns,memory,loop,batch").split(",");
const want = (name) => sections.includes(name);
const slots = 4;
const ctxPerSlot = 512;
const threads = Number(process.env.THREADS ?? Math.min(2, os.availableParallelism()));
const models = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["llama2vocab-135m-shape-random-Q4_K_M.gguf", "stories260K-Q8_0.gguf"];
const node = process.execPath;
const home = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-bench-serve-"));
const lmrunEnv = { ...process.env, LMRUN_HOME: home, NO_COLOR: "1" };
// The servers here are this script's own: no key, no other address.
delete lmrunEnv.LMRUN_HOST;
delete lmrunEnv.LMRUN_API_KEY;
const children = new Set();
const cleanup = () => {
  for (const child of children) child.kill("SIGKILL");
  fs.rmSync(home, { recursive: true, force: true });
};
process.on("exit", cleanup);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

const prompts = [
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.",
  "The little dog ran to the big tree and looked up at the bird singing on a branch high above.",
  "Tom had a red ball. One day he took it to the beach, where the waves were big and the sand was warm.",
  "In a small house by the river lived an old man who made toys out of wood for all the children in town.",
];
const longStory = Array.from({ length: 6 }, (_, i) => prompts[i % prompts.length]).join(" ");

console.log(`# lmrun serve vs llama-server (${rounds} interleaved rounds, ${slots} slots x ${ctxPerSlot} tokens, ${threads} threads, ${tokens} tokens a request, temp 0)`);
console.log(`load average at start: ${loadAverage()} (${os.cpus().length} cores; other work on this machine adds noise)\n`);

const tools = await ensureLlamaTools();
if (!tools.llamaServer) throw new Error("the llama-tools build did not report llama-server");
console.log(`llama-server: ${tools.llamaServer} (build ${tools.buildNumber}, commit ${tools.buildCommit})\n`);

const summary = [];
for (const name of models) {
  const modelPath = sharedModel(name);
  console.log(`## ${name} (${(fs.statSync(modelPath).size / 1e6).toFixed(1)} MB)\n`);
  const lmrun = await startLmrunServe(modelPath);
  const llama = await startLlamaServer(modelPath);
  try {
    await benchModel(name, modelPath, lmrun, llama);
  } finally {
    await stop(lmrun);
    await stop(llama);
  }
}

console.log("## summary\n");
printTable(["model", "measure", "lmrun serve", "llama-server", "ratio", "target"], summary);
console.log(`\nload average at end: ${loadAverage()}`);

async function benchModel(name, modelPath, lmrun, llama) {
  // Warm both (first requests pay one-off costs: graph reservation, page-in).
  for (const server of [lmrun, llama]) await completion(server, prompts[0], 8);

  if (want("throughput")) await throughput(name, lmrun, llama);
  if (want("turns")) await secondTurn(name, lmrun, llama);
  if (want("memory")) memory(name, modelPath, lmrun, llama);
  // 3. The shell loop against the warm server: `lmrun run` as a client.
  if (want("loop")) await shellLoop(name, lmrun);
  // 6. batch against run one by one.
  if (want("batch")) await batchVsRun(name, modelPath, lmrun);
}

async function throughput(name, lmrun, llama) {
  // 1. One client.
  const one = { lmrun: [], llama: [] };
  for (let r = 0; r < rounds; r++) {
    for await (const [key, server] of order(r, lmrun, llama)) one[key].push(await completion(server, prompts[r % prompts.length], tokens));
  }
  checkSameText("1 client", one);
  // 2. Four at once.
  const four = { lmrun: [], llama: [] };
  for (let r = 0; r < rounds; r++) {
    for await (const [key, server] of order(r, lmrun, llama)) four[key].push(await concurrent(server, tokens));
  }
  const rows = [];
  const ttft = (k) => median(one[k].map((x) => x.ttftMs));
  const gen = (k) => median(one[k].map((x) => x.genTps));
  const agg = (k) => median(four[k].map((x) => x.aggregateTps));
  const best = (values, pick) => pick(...values);
  rows.push(["1 client TTFT (ms)", fmt(ttft("lmrun")), fmt(ttft("llama")), ratio(ttft("llama"), ttft("lmrun")), "≥ 0.9x (speed)"]);
  rows.push(["1 client gen t/s", fmt(gen("lmrun")), fmt(gen("llama")), ratio(gen("lmrun"), gen("llama")), "≥ 0.9x"]);
  rows.push(["4 clients aggregate t/s", fmt(agg("lmrun")), fmt(agg("llama")), ratio(agg("lmrun"), agg("llama")), "≥ 0.9x"]);
  rows.push(["4 clients / lmrun 1 client", ratio(agg("lmrun"), gen("lmrun")), ratio(agg("llama"), gen("llama")), "", "≥ 1.7x"]);
  console.log("### throughput (median of rounds; best in brackets)\n");
  printTable(
    ["measure", "lmrun serve", "llama-server", "lmrun / llama-server"],
    rows.map(([m, a, b, c]) => [m, a, b, c]),
  );
  console.log(
    `\nbest: 1-client gen ${fmt(best(one.lmrun.map((x) => x.genTps), Math.max))} vs ${fmt(best(one.llama.map((x) => x.genTps), Math.max))} t/s; ` +
      `4-client aggregate ${fmt(best(four.lmrun.map((x) => x.aggregateTps), Math.max))} vs ${fmt(best(four.llama.map((x) => x.aggregateTps), Math.max))} t/s; ` +
      `tokens per request: lmrun ${one.lmrun[0].tokens}, llama-server ${one.llama[0].tokens}\n`,
  );
  // Paired: each round's ratio between the two servers (they ran back to back), so that the machine's
  // drift over the run (20-30% here) falls out; the median and range of those.
  const paired = (a, b) => {
    const ratios = a.map((x, i) => x / b[i]).sort((p, q) => p - q);
    return `${median(ratios).toFixed(2)}x (${ratios[0].toFixed(2)}–${ratios[ratios.length - 1].toFixed(2)})`;
  };
  console.log(
    `paired per-round ratios, median (range): 1-client TTFT ${paired(one.llama.map((x) => x.ttftMs), one.lmrun.map((x) => x.ttftMs))}, ` +
      `1-client gen ${paired(one.lmrun.map((x) => x.genTps), one.llama.map((x) => x.genTps))}, ` +
      `4-client aggregate ${paired(four.lmrun.map((x) => x.aggregateTps), four.llama.map((x) => x.aggregateTps))}\n`,
  );
  for (const row of rows) summary.push([name, ...row]);
}

async function secondTurn(name, lmrun, llama) {
  // 5. Second turn of a conversation (the whole conversation re-sent, as chat clients do).
  const turns = { lmrun: [], llama: [] };
  for (let r = 0; r < rounds; r++) {
    for await (const [key, server] of order(r, lmrun, llama)) {
      // A new conversation each round, different from its first token on: nothing cached from the last one.
      const opening = `Story ${r + 1}. ${longStory}`;
      const first = await completion(server, opening, 16);
      const second = await completion(server, `${opening}${first.text} Then what happened next?`, 16);
      turns[key].push({ first: first.ttftMs, second: second.ttftMs, promptTokens: first.promptTokens });
    }
  }
  const t1 = (k) => median(turns[k].map((x) => x.first));
  const t2 = (k) => median(turns[k].map((x) => x.second));
  console.log(`### re-sent conversation: TTFT of turn 1 (${turns.lmrun[0].promptTokens ?? "?"} prompt tokens) and turn 2 (ms, median)\n`);
  printTable(
    ["server", "turn 1", "turn 2", "turn 2 / turn 1"],
    [
      ["lmrun serve", fmt(t1("lmrun")), fmt(t2("lmrun")), ratio(t2("lmrun"), t1("lmrun"))],
      ["llama-server", fmt(t1("llama")), fmt(t2("llama")), ratio(t2("llama"), t1("llama"))],
    ],
  );
  console.log("");
  summary.push([name, "turn-2 TTFT / turn-1 TTFT", ratio(t2("lmrun"), t1("lmrun")), ratio(t2("llama"), t1("llama")), "", "well under 1"]);
}

function memory(name, modelPath, lmrun, llama) {
  // 4. Memory, after all that work.
  const rss = rssBytes(lmrun.child.pid);
  const llamaRss = rssBytes(llama.child.pid);
  const modelBytes = fs.statSync(modelPath).size;
  const kvBytes = lmrun.kvBytes;
  const bound = modelBytes + (kvBytes ?? 0) + 150e6;
  console.log("### memory (RSS after the runs above)\n");
  printTable(
    ["", "MB"],
    [
      ["lmrun serve RSS", mb(rss)],
      ["llama-server RSS", mb(llamaRss)],
      ["model file", mb(modelBytes)],
      [`KV cache (${slots} x ${ctxPerSlot}, from llama.cpp's log in lmrun serve)`, kvBytes !== undefined ? mb(kvBytes) : "?"],
      ["bound: model + KV + 150 MB", mb(bound)],
    ],
  );
  console.log(`\nlmrun serve RSS is ${rss <= bound ? "within" : "ABOVE"} the bound (${mb(rss)} of ${mb(bound)} MB)\n`);
  summary.push([name, "server RSS (MB)", mb(rss), mb(llamaRss), "", `≤ ${mb(bound)}`]);
}

async function batchVsRun(name, modelPath, lmrun) {
  const count = 16;
  const n = 32;
  const batchRounds = Number(process.env.BATCH_ROUNDS ?? 2);
  const items = Array.from({ length: count }, (_, i) => `${prompts[i % prompts.length]} (${i})`);
  const file = path.join(home, "batch.jsonl");
  fs.writeFileSync(file, items.map((prompt, id) => JSON.stringify({ id, prompt })).join("\n") + "\n");
  const times = { runLocal: [], runServed: [], batchLocal: [], batchServed: [] };
  const texts = {};
  for (let r = 0; r < batchRounds; r++) {
    let started = performance.now();
    const local = [];
    for (const prompt of items) {
      const x = await timeCommand(node, [lmrunBin, "run", modelPath, prompt, "-n", String(n), "--temp", "0", "--local", "-t", String(threads)], { env: lmrunEnv });
      if (x.code !== 0) throw new Error(`lmrun run failed: ${x.stderr}`);
      local.push(x.stdout);
    }
    times.runLocal.push(performance.now() - started);
    started = performance.now();
    for (const prompt of items) await timeCommand(node, [lmrunBin, "run", lmrun.modelName, prompt, "-n", String(n), "--temp", "0"], { env: lmrunEnv });
    times.runServed.push(performance.now() - started);
    for (const [key, extra] of [["batchLocal", ["--local", "--parallel", String(slots), "-t", String(threads), "--ctx", String(ctxPerSlot)]], ["batchServed", []]]) {
      const x = await timeCommand(node, [lmrunBin, "batch", key === "batchLocal" ? modelPath : lmrun.modelName, file, "-n", String(n), "--temp", "0", ...extra], { env: lmrunEnv });
      if (x.code !== 0) throw new Error(`lmrun batch failed: ${x.stderr}`);
      times[key].push(x.ms);
      const answers = new Map(x.stdout.trimEnd().split("\n").map((l) => JSON.parse(l)).map((a) => [a.id, a.text]));
      texts[key] = items.filter((_, i) => answers.get(i) === local[i]).length;
    }
  }
  const base = median(times.runLocal);
  console.log(`### ${count} prompts x ${n} tokens: \`lmrun batch\` vs \`lmrun run\` one by one (wall s, median of ${batchRounds})\n`);
  printTable(
    ["how", "s", "speed-up"],
    [
      ["lmrun run one by one, in-process (loads each time)", (base / 1000).toFixed(1), "1.00x"],
      ["lmrun run one by one, through the warm server", (median(times.runServed) / 1000).toFixed(1), ratio(base, median(times.runServed))],
      [`lmrun batch --local --parallel ${slots}`, (median(times.batchLocal) / 1000).toFixed(1), ratio(base, median(times.batchLocal))],
      [`lmrun batch through the server (${slots} slots)`, (median(times.batchServed) / 1000).toFixed(1), ratio(base, median(times.batchServed))],
    ],
  );
  console.log(`\nanswers identical to run's at temp 0: batch --local ${texts.batchLocal}/${count}, batch via server ${texts.batchServed}/${count}\n`);
  summary.push([name, "batch (server) speed-up vs run one by one", fmt(median(times.batchServed) / 1000) + " s", "", ratio(base, median(times.batchServed)), ""]);
}

async function shellLoop(name, lmrun) {
  const bare = [];
  const above = [];
  const wall = [];
  let servedBy;
  for (let i = 0; i < loopCalls; i++) {
    bare.push((await timeCommand(node, ["-e", "0"])).ms);
    const r = await timeCommand(node, [lmrunBin, "run", lmrun.modelName, `${prompts[i % prompts.length]}`, "-n", "16", "--temp", "0", "--json"], { env: lmrunEnv });
    if (r.code !== 0) throw new Error(`lmrun run failed: ${r.stderr}`);
    const answer = JSON.parse(r.stdout);
    servedBy ??= answer.timings.loadMs;
    wall.push(r.ms);
    // The server's own time for the request (load + prompt + generation) is not the client's overhead.
    above.push(r.ms - answer.timings.totalMs);
  }
  const b = median(bare);
  const a = median(above);
  console.log(`### shell loop: ${loopCalls} x \`lmrun run ${lmrun.modelName} "..." -n 16\` against the warm server (ms, median)\n`);
  printTable(
    ["", "ms"],
    [
      ["node -e 0", fmt(b)],
      ["lmrun run, whole call", fmt(median(wall))],
      ["lmrun run, above the server's request time", fmt(a)],
      ["ratio (above / node -e 0)", ratio(a, b)],
    ],
  );
  console.log("");
  summary.push([name, "run call above server time / node -e 0", fmt(a), `node ${fmt(b)}`, ratio(a, b), "≤ 2x"]);
}

/**
 * A then B in even rounds, B then A in odd ones, so neither always runs on a warmer machine; each is
 * measured only once both are idle. After its last token a server's ggml threads keep spinning on a
 * core for ~120 ms (llama.cpp's polling level 50; both servers do it), which would otherwise overlap
 * the other server's next request (a 64-token request on stories260K lasts 40-80 ms) and measure each
 * next to a busy neighbour rather than alone, as it runs.
 */
async function* order(round, lmrun, llama) {
  const pair = round % 2 === 0 ? [["lmrun", lmrun], ["llama", llama]] : [["llama", llama], ["lmrun", lmrun]];
  for (const entry of pair) {
    await idle([lmrun.child.pid, llama.child.pid]);
    yield entry;
  }
}

/** Waits (up to 2 s) until these processes used no CPU for 60 ms in a row (Linux /proc; elsewhere a fixed 300 ms). */
async function idle(pids) {
  const cpuTicks = () => {
    let total = 0;
    for (const pid of pids) {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop().trim().split(" ");
      total += Number(fields[11]) + Number(fields[12]);
    }
    return total;
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  if (process.platform !== "linux") return sleep(300);
  const deadline = performance.now() + 2000;
  let last = cpuTicks();
  let quietSince = performance.now();
  while (performance.now() < deadline) {
    await sleep(20);
    const now = cpuTicks();
    if (now !== last) quietSince = performance.now();
    else if (performance.now() - quietSince >= 60) return;
    last = now;
  }
}

/** One streaming /v1/completions request: TTFT, generation rate between the first and the last token, and the text. */
async function completion(server, prompt, maxTokens) {
  const started = performance.now();
  const response = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: server.modelName, prompt, max_tokens: maxTokens, temperature: 0, seed: 1, stream: true, stream_options: { include_usage: true } }),
  });
  if (!response.ok) throw new Error(`${server.label} answered ${response.status}: ${await response.text()}`);
  let first;
  let last;
  let chunks = 0;
  let text = "";
  let usage;
  let buffered = "";
  const decoder = new TextDecoder();
  for await (const piece of response.body) {
    buffered += decoder.decode(piece, { stream: true });
    let at;
    while ((at = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, at).trim();
      buffered = buffered.slice(at + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") continue;
      const event = JSON.parse(data);
      if (event.usage) usage = event.usage;
      const content = event.choices?.[0]?.text ?? "";
      if (content.length > 0) {
        const now = performance.now();
        first ??= now;
        last = now;
        chunks++;
        text += content;
      }
    }
  }
  const count = usage?.completion_tokens ?? chunks;
  return {
    ttftMs: first - started,
    genTps: last > first && count > 1 ? (count - 1) / ((last - first) / 1000) : NaN,
    tokens: count,
    promptTokens: usage?.prompt_tokens,
    text,
    totalMs: performance.now() - started,
  };
}

/** The four prompts at once; aggregate rate = all generated tokens / wall time from the first request to the last answer. */
async function concurrent(server, maxTokens) {
  const started = performance.now();
  const results = await Promise.all(prompts.map((p) => completion(server, p, maxTokens)));
  const seconds = (performance.now() - started) / 1000;
  return { aggregateTps: results.reduce((n, r) => n + r.tokens, 0) / seconds, texts: results.map((r) => r.text) };
}

function checkSameText(what, runs) {
  const a = runs.lmrun.map((r) => r.text);
  const b = runs.llama.map((r) => r.text);
  const same = a.filter((t, i) => t === b[i]).length;
  // llama-server keeps the space SentencePiece puts before the first word; lmrun (node-llama-cpp) does not.
  const sameBarSpace = a.filter((t, i) => t.trimStart() === b[i].trimStart()).length;
  console.log(`${what}: ${same}/${a.length} answers byte-identical between the two servers at temp 0, ${sameBarSpace}/${a.length} but for a leading space\n`);
}

async function startLmrunServe(modelPath) {
  const port = await freePort();
  // --verbose: llama.cpp's own log names the KV cache it allocated (for the memory bound).
  const args = [lmrunBin, "serve", modelPath, "--port", String(port), "--parallel", String(slots), "--ctx", String(ctxPerSlot), "-t", String(threads), "--threads-batch", String(threads), "--keep-alive", "-1", "--verbose"];
  const child = spawn(node, args, { env: lmrunEnv, stdio: ["ignore", "ignore", "pipe"] });
  return ready({ child, label: "lmrun serve", url: `http://127.0.0.1:${port}` }, modelPath, true);
}

async function startLlamaServer(modelPath) {
  const port = await freePort();
  const args = ["-m", modelPath, "--host", "127.0.0.1", "--port", String(port), "-np", String(slots), "-c", String(slots * ctxPerSlot), "-t", String(threads), "-tb", String(threads), "--no-kv-unified", "--no-webui"];
  const child = spawn(tools.llamaServer, args, { stdio: ["ignore", "ignore", "pipe"] });
  return ready({ child, label: "llama-server", url: `http://127.0.0.1:${port}` }, modelPath, false);
}

/** Waits for /health; records the log (llama-server's names its KV cache size) and the served model name. */
async function ready(server, modelPath, isLmrun) {
  children.add(server.child);
  let log = "";
  server.child.stderr.setEncoding("utf8").on("data", (d) => {
    if (log.length < 1e6) log += d;
  });
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`${server.label} exited (${server.child.exitCode}):\n${log.slice(-2000)}`);
    try {
      const r = await fetch(`${server.url}/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${server.label} did not become ready:\n${log.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  server.log = () => log;
  // "llama_kv_cache:        CPU KV buffer size =     1.25 MiB": every slot's part of the cache.
  const sizes = [...log.matchAll(/llama_kv_cache:\s+\S+ KV buffer size\s*=\s*([\d.]+)\s*MiB/g)].map((m) => Number(m[1]));
  server.kvBytes = sizes.length > 0 ? sizes.reduce((a, b) => a + b, 0) * 1024 * 1024 : undefined;
  if (isLmrun) {
    const tags = await (await fetch(`${server.url}/api/tags`)).json();
    const real = fs.realpathSync(modelPath);
    const entry = (tags.models ?? []).find((m) => m.lmrun?.path === real || m.lmrun?.path === modelPath) ?? tags.models?.[0];
    server.modelName = entry?.name ?? path.basename(modelPath, ".gguf");
  } else {
    server.modelName = path.basename(modelPath);
  }
  return server;
}

async function stop(server) {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(server.child);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function rssBytes(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]);
    return kb * 1024;
  } catch {
    return NaN;
  }
}

function fmt(x) {
  return Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : "-";
}
function mb(bytes) {
  return Number.isFinite(bytes) ? (bytes / 1e6).toFixed(bytes < 10e6 ? 1 : 0) : "-";
}
function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : "-";
}
