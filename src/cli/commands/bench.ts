import type { Command } from "commander";
import type { BenchFlags } from "../actions/bench.js";
import type { CommandContext } from "../context.js";
import { acceptLlamaCppSpellings, LLAMA_BENCH_SPELLINGS } from "../llamaCppFlags.js";
import { addRpcOption } from "../modelOptions.js";
import { collect, parseGpu } from "../parse.js";


export function registerBench(program: Command, ctx: CommandContext): void {
  const command = program
    .command("bench")
    .description("measure prompt and generation speed as llama-bench does (same tests, method and output formats)")
    .argument("<models...>", "one or more .gguf paths or model names; every combination of the values below is run")
    .option("-p, --n-prompt <n>", "prompt tokens per pp test: a list (512,1024) or range (128-1024*2) (default 512)", collect)
    .option("-n, --n-gen <n>", "tokens per tg test, list or range (default 128)", collect)
    .option("--pg <pp,tg>", "a prompt+generation test, e.g. 512,128 (llama-bench: -pg)", collect)
    .option("-d, --n-depth <n>", "tokens already in the context when the test starts (default 0)", collect)
    .option("-r, --repetitions <n>", "repetitions per test, after one warm-up (default 5)")
    .option("-t, --threads <n>", "CPU threads, list or range (default: lmrun's thread policy)", collect)
    .option("-b, --batch-size <n>", "logical batch size n_batch (default 2048)", collect)
    .option("--ubatch-size <n>", "physical batch size n_ubatch (llama-bench: -ub; default 512)", collect)
    .option("--n-gpu-layers <n>", "layers offloaded to the GPU, -1 for all (llama-bench: -ngl; default -1)", collect)
    .option("--flash-attn <on|off|auto>", "flash attention (llama-bench: -fa; default auto)", collect)
    .option("--cache-type-k <type>", "K cache type: f16, q8_0, q4_0, … (llama-bench: -ctk; default f16)", collect)
    .option("--cache-type-v <type>", "V cache type (llama-bench: -ctv; default f16)", collect)
    .option("--no-warmup", "skip the warm-up run")
    .option("-o, --output <format>", "md, csv, json or jsonl (default md)")
    .option("--gpu <backend>", "compute backend: auto, cuda, vulkan, metal or cpu", (v: string) => parseGpu(v));
  addRpcOption(command, { description: "offload to llama.cpp RPC workers HOST:PORT[,...] (llama-bench: -rpc; default: LMRUN_RPC; needs `lmrun engine build --rpc`)" })
    .option("--prompt-file <file>", "instead of random tokens: this text through the same path as `run` (TTFT, prompt and generation t/s)")
    .option("--compare <old.json>", "print deltas against an earlier -o json/jsonl run, marked where beyond the noise")
    .option("--tune", "find the fastest threads and batch size for this model (among -t and -b if given) and save them as its default for run and chat")
    .option("--plot <file>", "also draw the results into FILE.svg or .png: a sweep as lines (t/s against the swept value), --compare as grouped bars with error bars");
  acceptLlamaCppSpellings(command, LLAMA_BENCH_SPELLINGS);
  command.action(async (models: string[], flags: BenchFlags & { nGpuLayers?: string[]; ubatchSize?: string[]; repetitions?: string }) => {
    const { runBenchCommand } = await import("../actions/bench.js");
    await runBenchCommand(ctx, models, flags);
  });
}
