#!/usr/bin/env node
// How many slots should `lmrun serve --parallel` default to? For each slot count P, P concurrent
// greedy completions on one context (the server's slot scheduler, in-process: no HTTP), aggregate
// generated tokens per second. Rounds are interleaved (P = 1, 2, 4, 8, 1, 2, ...); median and best.
// Then the prefix cache: a chat's second turn (the whole conversation re-sent) against its first.
//
//   npm run build && node scripts/bench-serve-parallel.mjs [MODEL.gguf] [--rounds 3] [--tokens 64] [--threads 2] [--cache-only]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const modelPath = args.find((a) => a.endsWith(".gguf")) ?? path.join(root, "..", "shared", "models", "llama2vocab-135m-shape-random-Q4_K_M.gguf");
const rounds = flag("--rounds", 3);
const tokens = flag("--tokens", 64);
const threads = flag("--threads", 2);
const slotCounts = args.includes("--cache-only") ? [] : [1, 2, 4, 8];
if (!fs.existsSync(modelPath)) {
  console.error(`no model at ${modelPath}`);
  process.exit(2);
}

const { loadModel } = await import(path.join(root, "dist/engine/model.js"));
const { SlotScheduler } = await import(path.join(root, "dist/engine/scheduler/slotScheduler.js"));

const sampling = { temperature: 0, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, seed: 1 };
const load = (sequences, contextSize = 512) => loadModel(modelPath, { gpu: "cpu", gpuLayers: 0, threads, batchThreads: threads, contextSize, sequences, verbose: false });

async function throughput(parallel) {
  const loaded = await load(parallel);
  const scheduler = new SlotScheduler(loaded, { maxQueue: 0 });
  // Warm-up: one short request (first decodes allocate).
  await scheduler.generate({ prompt: "Hello", chat: false, maxTokens: 4, stop: [], sampling, truncate: false });
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: parallel }, (_, i) => scheduler.generate({ prompt: `Story number ${i}: once upon a time`, chat: false, maxTokens: tokens, stop: [], sampling, truncate: false })),
  );
  const seconds = (performance.now() - started) / 1000;
  await scheduler.dispose();
  await loaded.dispose();
  const generated = results.reduce((sum, r) => sum + r.generatedTokens, 0);
  return generated / seconds;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const figures = new Map(slotCounts.map((p) => [p, []]));
for (let round = 0; round < rounds; round++) {
  for (const p of slotCounts) {
    figures.get(p).push(await throughput(p));
    process.stderr.write(`round ${round + 1}, ${p} slots: ${figures.get(p).at(-1).toFixed(1)} t/s\n`);
  }
}
console.log(`model ${path.basename(modelPath)}, ${tokens} tokens per client, ${threads} threads, ${rounds} interleaved rounds`);
if (slotCounts.length > 0) console.log("slots=clients  aggregate t/s (median / best)  vs 1 slot");
const base = slotCounts.length > 0 ? median(figures.get(1)) : 1;
for (const p of slotCounts) {
  const xs = figures.get(p);
  console.log(`${String(p).padStart(13)}  ${median(xs).toFixed(1).padStart(10)} / ${Math.max(...xs).toFixed(1).padEnd(16)} ${(median(xs) / base).toFixed(2)}x`);
}

// Prefix cache: turn 2 re-sends turn 1 (system prompt, question, answer) plus a new question.
{
  const loaded = await load(4, 1024);
  const scheduler = new SlotScheduler(loaded, { maxQueue: 0 });
  const system = "You are a storyteller. ".repeat(25).trim();
  const ttft = { first: [], second: [] };
  for (let round = 0; round < rounds; round++) {
    const topic = `topic ${round}`;
    const turn1 = [
      // A new system prompt each round: turn 1 finds nothing of itself in any slot's cache.
      { role: "system", text: `Story ${round}. ${system}` },
      { role: "user", text: `Tell me about ${topic}.` },
    ];
    const first = await scheduler.generate({ prompt: "", messages: turn1, chat: true, maxTokens: 16, stop: [], sampling, truncate: false });
    const turn2 = [...turn1, { role: "assistant", text: first.text }, { role: "user", text: "And then?" }];
    const second = await scheduler.generate({ prompt: "", messages: turn2, chat: true, maxTokens: 16, stop: [], sampling, truncate: false });
    ttft.first.push(first.timings.ttftMs);
    ttft.second.push(second.timings.ttftMs);
    if (round === 0) console.log(`\nchat turn 1: ${first.promptTokens} prompt tokens; turn 2: ${second.promptTokens} prompt tokens, ${second.cachedPromptTokens} from the slot's cache`);
  }
  console.log(`TTFT turn 1 median ${median(ttft.first).toFixed(0)} ms, turn 2 median ${median(ttft.second).toFixed(0)} ms (each round: ${ttft.first.map((t, i) => `${t.toFixed(0)}/${ttft.second[i].toFixed(0)}`).join(", ")})`);
  await scheduler.dispose();
  await loaded.dispose();
}
console.log(`loadavg: ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`);
