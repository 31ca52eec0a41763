#!/usr/bin/env node
"use strict";
// CommonJS on purpose (bin/package.json): an ES module entry starts libuv's thread pool before its
// first line runs, and the pool's size must be set before that.
//
// Commands that run a model get a one-thread pool. node-llama-cpp runs each llama_decode on
// whichever pool thread is free; with four of them, consecutive tokens are computed by different
// threads that the scheduler keeps moving between cores, while llama-bench decodes from one thread.
// Measured on 2 cores (README "Threads"): generation +4% with 1 thread and +15% with 2 on a 135M
// model, and up to +30% on the tiny demo model. Nothing else lmrun does needs the pool in parallel.
// An explicit UV_THREADPOOL_SIZE is left alone.
const MODEL_COMMANDS = new Set(["run", "chat", "bench", "perplexity", "eval", "serve", "batch"]);
const command = process.argv.slice(2).find((arg) => !arg.startsWith("-"));
if (process.env.UV_THREADPOOL_SIZE === undefined && MODEL_COMMANDS.has(command)) {
  process.env.UV_THREADPOOL_SIZE = "1";
}

// Node 22.1+ keeps V8's compiled code of lmrun and its bundled node-llama-cpp between runs (in the OS
// temp directory, as tsc does): ~30 ms off each start. Absent on Node 20, and NODE_DISABLE_COMPILE_CACHE=1 turns it off.
require("node:module").enableCompileCache?.();

import("../dist/entry.js").then((entry) => entry.runFromProcess());
