import path from "node:path";
import type { CommandContext } from "../context.js";
import { DEFAULT_SAMPLING } from "../../config/defaults.js";
import type { GpuChoice, RpcLoadOptions } from "../../engine/types.js";
import { promptFileTable, summarisePromptFile } from "../../bench/format.js";
import { isAbort, type BenchModelSource } from "../../bench/runBench.js";
import type { BenchParams, OutputFormat, PromptFileRecord } from "../../bench/types.js";

/**
 * `--prompt-file`: real text through the same path as `lmrun run` (tokenisation, the batching queue and
 * sampling included), so the figures are what a user feels: time to first token, prompt and generation
 * speed. One row per model and thread count; -n sets the tokens generated, -r the repetitions.
 */
export async function runPromptFileBench(
  ctx: CommandContext,
  job: { params: BenchParams; models: ReadonlyMap<string, BenchModelSource>; gpu: GpuChoice; prompt: string; format: OutputFormat; rpc?: RpcLoadOptions | undefined },
): Promise<void> {
  const { loadModel } = await import("../../engine/model.js");
  const { generate } = await import("../../engine/generate.js");
  const maxTokens = job.params.nGen[0] ?? 128;
  const records: PromptFileRecord[] = [];
  const stream = job.format === "jsonl" || job.format === "csv";
  if (job.format === "csv") ctx.out.text("model_filename,n_threads,prompt_tokens,generated_tokens,avg_ttft_ms,stddev_ttft_ms,avg_prompt_ts,stddev_prompt_ts,avg_gen_ts,stddev_gen_ts\n");
  try {
    for (const ref of job.params.models) {
      const source = job.models.get(ref)!;
      for (const threads of job.params.nThreads) {
        if (ctx.signal.aborted) break;
        const loaded = await loadModel(source.path, { gpu: job.gpu, gpuLayers: "auto", threads, verbose: ctx.verbose, signal: ctx.signal, rpc: job.rpc });
        try {
          const request = {
            prompt: job.prompt,
            chat: false,
            maxTokens,
            stop: [],
            sampling: { ...DEFAULT_SAMPLING, seed: 42 },
            truncate: true,
          };
          if (job.params.warmup) await generate(loaded, request, { signal: ctx.signal });
          const ttft: number[] = [];
          const promptTs: number[] = [];
          const genTs: number[] = [];
          let promptTokens = 0;
          let generated = 0;
          for (let rep = 0; rep < job.params.repetitions && !ctx.signal.aborted; rep++) {
            const result = await generate(loaded, request, { signal: ctx.signal });
            if (ctx.signal.aborted) break;
            if (rep === 0 && result.truncatedPromptTokens > 0) {
              ctx.out.warn(`${source.displayName}: the prompt file was cut to fit the ${loaded.summary.contextSize}-token context (its first ${result.truncatedPromptTokens} tokens dropped)`);
            }
            promptTokens = result.promptTokens;
            generated = result.generatedTokens;
            if (result.timings.ttftMs !== null) ttft.push(result.timings.ttftMs);
            if (result.timings.promptTokensPerSecond !== null) promptTs.push(result.timings.promptTokensPerSecond);
            if (result.timings.generationTokensPerSecond !== null) genTs.push(result.timings.generationTokensPerSecond);
          }
          if (ttft.length < job.params.repetitions) break;
          const record = summarisePromptFile({
            model_filename: source.displayName,
            n_threads: threads,
            prompt_tokens: promptTokens,
            generated_tokens: generated,
            ttft_ms: ttft,
            prompt_ts: promptTs,
            gen_ts: genTs,
          });
          records.push(record);
          if (job.format === "jsonl") ctx.out.jsonLine(record);
          if (job.format === "csv") {
            const r = record;
            ctx.out.text(
              [path.basename(r.model_filename), r.n_threads, r.prompt_tokens, r.generated_tokens, r.avg_ttft_ms, r.stddev_ttft_ms, r.avg_prompt_ts, r.stddev_prompt_ts, r.avg_gen_ts, r.stddev_gen_ts]
                .map((v) => `"${typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(6)) : v}"`)
                .join(",") + "\n",
            );
          }
        } finally {
          await loaded.dispose();
        }
      }
    }
  } catch (error) {
    if (!isAbort(error, ctx.signal)) throw error;
  }
  if (!stream) {
    if (job.format === "json") ctx.out.json(records);
    else ctx.out.text(promptFileTable(records.map((r) => ({ ...r, model_filename: path.basename(r.model_filename) }))));
  }
  if (ctx.signal.aborted) ctx.out.warn(`interrupted: ${records.length} prompt-file rows finished; the results are partial`);
}
