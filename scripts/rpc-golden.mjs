#!/usr/bin/env node
// Makes the reference values of test/rpc/golden.ts with llama.cpp's own tools (npm run llama-tools:
// llama-completion and llama-perplexity, built with GGML_RPC=ON from the source node-llama-cpp ships),
// against two `lmrun rpc-server` workers on 127.0.0.1, and prints them. Needs an RPC engine build.
//
//   npm run build && node scripts/rpc-golden.mjs
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ensureLlamaTools } from "./llama-tools.mjs";
import { startRpcWorker } from "./rpc-workers.mjs";

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const tiny = path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf");
// test/rpc/golden.ts is TypeScript: its word list is read from it and the same generator runs here.
const goldenSource = fs.readFileSync(path.join(repoRoot, "test", "rpc", "golden.ts"), "utf8");
const words = JSON.parse(/const STORY_WORDS = (\[[^\]]*\])/.exec(goldenSource)[1]);
function perplexityTextContent() {
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % words.length;
  };
  const sentences = [];
  for (let i = 0; i < 500; i++) sentences.push(Array.from({ length: 8 }, () => words[next()]).join(" ") + ".");
  return sentences.join(" ") + "\n";
}

const tools = await ensureLlamaTools();
const workers = [await startRpcWorker({ threads: 1 }), await startRpcWorker({ threads: 1 })];
const rpc = workers.map((w) => w.endpoint).join(",");
try {
  const completion = await execFileAsync(tools.llamaCompletion, ["-m", tiny, "-p", "Once upon a time", "-n", "48", "--temp", "0", "--rpc", rpc, "-ngl", "99", "-no-cnv", "--no-display-prompt", "-s", "1"], { maxBuffer: 16 << 20 });
  const text = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-golden-")), "story.txt");
  fs.writeFileSync(text, perplexityTextContent());
  const perplexity = await execFileAsync(tools.llamaPerplexity, ["-m", tiny, "-f", text, "-c", "128", "--rpc", rpc, "-ngl", "99"], { maxBuffer: 16 << 20 });
  const final = /Final estimate: PPL = ([0-9.]+)/.exec(perplexity.stdout + perplexity.stderr);
  console.log(JSON.stringify({ runText: completion.stdout, perplexity: final ? Number(final[1]) : null }, null, 2));
} finally {
  for (const worker of workers) await worker.stop();
}
