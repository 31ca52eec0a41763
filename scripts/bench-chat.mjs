#!/usr/bin/env node
// Does the chat TUI slow generation? Drives `lmrun chat` in a real terminal (tmux) and compares the
// tokens/s its reply footer reports with `lmrun run --json` (timings.generationTokensPerSecond) on the
// same model, prompt, sampling and threads, interleaved A B A B …; prints median and best of each and
// the ratio chat/run (target ≥ 0.9).
//
//   npm run bench:chat [-- --rounds 5 --model PATH --tokens 128 --threads N]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const rounds = Number(option("rounds", "5"));
const tokens = Number(option("tokens", "128"));
const model = path.resolve(option("model", path.join(root, "..", "shared", "models", "llama2vocab-135m-shape-random-Q4_K_M.gguf")));
const threads = option("threads", undefined);
const prompt = "Once upon a time";
const cli = path.join(root, "bin", "lmrun.js");
const common = ["--temp", "0", "-n", String(tokens), ...(threads ? ["-t", threads] : [])];

if (spawnSync("tmux", ["-V"]).status !== 0) {
  console.error("bench:chat needs tmux (apt-get install tmux)");
  process.exit(2);
}
if (!fs.existsSync(model)) {
  console.error(`model not found: ${model}`);
  process.exit(2);
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-bench-chat-"));
const socket = `lmrun-bench-${process.pid}`;
const tmux = (...a) => {
  const r = spawnSync("tmux", ["-L", socket, "-f", "/dev/null", ...a], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tmux ${a.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
const screen = () => tmux("capture-pane", "-p", "-t", "bench");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check, what, timeoutMs = 120_000, pollMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = screen();
    const result = check(s);
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${s}`);
    await sleep(pollMs);
  }
}

function runOnce() {
  const r = spawnSync(process.execPath, [cli, "run", model, prompt, ...common, "--json"], {
    encoding: "utf8",
    env: { ...process.env, LMRUN_HOME: home },
  });
  if (r.status !== 0) throw new Error(`lmrun run failed: ${r.stderr}`);
  const result = JSON.parse(r.stdout);
  return { tps: result.timings.generationTokensPerSecond, tokens: result.generatedTokens };
}

async function chatOnce() {
  // /clear first: every reply starts from the same empty context, as `run` does.
  tmux("send-keys", "-t", "bench", "-l", "/clear");
  tmux("send-keys", "-t", "bench", "Enter");
  await waitFor((s) => s.includes("started over") && !/\d+ tokens · /.test(s), "/clear");
  tmux("send-keys", "-t", "bench", "-l", prompt);
  tmux("send-keys", "-t", "bench", "Enter");
  const match = await waitFor((s) => /(\d+) tokens · ([\d.]+) tok\/s/.exec(s), "the reply");
  return { tps: Number(match[2]), tokens: Number(match[1]) };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  tmux("new-session", "-d", "-s", "bench", "-x", "160", "-y", "50", "env", "-u", "CI", `LMRUN_HOME=${home}`, "NO_COLOR=1", "LMRUN_NOHISTORY=1",
    process.execPath, cli, "chat", model, ...common);
  await waitFor((s) => s.includes("type a message"), "the chat to start");
  // One warm-up each, not counted.
  await chatOnce();
  runOnce();
  const chat = [];
  const run = [];
  for (let i = 0; i < rounds; i++) {
    const c = await chatOnce();
    const r = runOnce();
    chat.push(c.tps);
    run.push(r.tps);
    console.log(`round ${i + 1}: chat ${c.tps.toFixed(1)} tok/s (${c.tokens} tokens)   run ${r.tps.toFixed(1)} tok/s (${r.tokens} tokens)`);
  }
  // Key latency while a reply streams: type a character, time until it shows in the prompt.
  tmux("send-keys", "-t", "bench", "-l", "/set max-tokens 100000");
  tmux("send-keys", "-t", "bench", "Enter");
  tmux("send-keys", "-t", "bench", "-l", prompt);
  tmux("send-keys", "-t", "bench", "Enter");
  await waitFor((s) => s.includes("generating…"), "a long reply to start");
  const latencies = [];
  for (let i = 1; i <= 10; i++) {
    const started = performance.now();
    tmux("send-keys", "-t", "bench", "-l", String(i % 10));
    await waitFor((s) => s.split("\n").some((line) => line.startsWith("› ") && line.includes("1234567890".slice(0, i))), `key ${i} to show`, 10_000, 5);
    latencies.push(performance.now() - started);
  }
  tmux("send-keys", "-t", "bench", "C-c");
  const ratio = median(chat) / median(run);
  console.log(`\nmodel ${path.basename(model)}, ${tokens} tokens, temp 0${threads ? `, ${threads} thread(s)` : ", default threads"}, ${rounds} rounds interleaved`);
  console.log(`chat (TUI, tmux): median ${median(chat).toFixed(1)} tok/s, best ${Math.max(...chat).toFixed(1)}`);
  console.log(`run --json:       median ${median(run).toFixed(1)} tok/s, best ${Math.max(...run).toFixed(1)}`);
  console.log(`ratio chat/run (median): ${ratio.toFixed(3)} ${ratio >= 0.9 ? "(meets the 0.9 target)" : "(BELOW the 0.9 target)"}`);
  console.log(`key to screen while a reply streams (10 keys, tmux capture polling included): median ${median(latencies).toFixed(0)} ms, worst ${Math.max(...latencies).toFixed(0)} ms`);
  process.exitCode = ratio >= 0.9 ? 0 : 1;
} finally {
  spawnSync("tmux", ["-L", socket, "kill-server"]);
  fs.rmSync(home, { recursive: true, force: true });
}
