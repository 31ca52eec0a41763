import type { Command } from "commander";
import { readSettings } from "../../config/config.js";
import type { GenerateRequest } from "../../engine/types.js";
import { formatRunStats } from "../../io/stats.js";
import { readPipedStdin } from "../../io/tty.js";
import type { CommandContext } from "../context.js";
import { LmrunError, UsageError } from "../../errors.js";
import { addLoadOptions, addSamplingOptions, modelFacts, resolveLoadOptions, resolveRpc, resolveSampling, type LoadFlags, type SamplingFlags } from "../modelOptions.js";
import { delegateToRpcChild } from "../rpcChild.js";
import { collect } from "../parse.js";
import { resolveAndLoad } from "../prepareModel.js";
import { assemblePrompt, readJsonSchemaFile, readTextFile } from "../prompt.js";

interface RunFlags extends LoadFlags, SamplingFlags {
  system?: string;
  systemFile?: string;
  raw?: boolean;
  stop?: string[];
  format?: string;
  jsonSchema?: string;
  truncate?: boolean;
  stats?: boolean;
  json?: boolean;
}

export function registerRun(program: Command, ctx: CommandContext): void {
  const command = program
    .command("run")
    .description("generate a reply to one prompt and exit (the prompt comes from the arguments and/or stdin)")
    .argument("<model>", "a catalogue name (qwen2.5:0.5b), hf:USER/REPO[:QUANT], a URL, a .gguf path, or `tiny` (bundled)")
    .argument("[prompt...]", "the prompt; piped stdin is appended after it as material")
    .option("-s, --system <text>", "system prompt")
    .option("--system-file <file>", "read the system prompt from a file")
    .option("--raw", "plain text completion: no chat template")
    .option("--stop <text>", "stop when this text is generated (repeatable)", collect)
    .option("--format <format>", "constrain the output: json")
    .option("--json-schema <file>", "constrain the output to this JSON schema")
    .option("--truncate", "keep the end of a prompt that is longer than the context instead of failing")
    .option("--stats", "print timing statistics to stderr when done")
    .option("--json", "print one JSON object with the text, token counts and timings");
  addSamplingOptions(addLoadOptions(command));
  command.action(async (model: string, promptArgs: string[], flags: RunFlags) => {
    await runCommand(ctx, model, promptArgs, flags);
  });
}

async function runCommand(ctx: CommandContext, modelRef: string, promptArgs: string[], flags: RunFlags): Promise<void> {
  // With RPC workers the model runs in a child process that a dying worker cannot take this one down with.
  if (await delegateToRpcChild(ctx, resolveRpc(flags, ctx.env))) return;
  if (flags.format !== undefined && flags.format !== "json") throw new UsageError(`unknown --format "${flags.format}"`, "The only format is json");
  if (flags.system !== undefined && flags.systemFile !== undefined) throw new UsageError("give --system or --system-file, not both");
  if (flags.format !== undefined && flags.jsonSchema !== undefined) throw new UsageError("give --format json or --json-schema, not both", "--json-schema already constrains the output to JSON");
  const jsonSchema = flags.jsonSchema !== undefined ? await readJsonSchemaFile(flags.jsonSchema) : flags.format === "json" ? ("json" as const) : undefined;
  const systemPrompt = flags.systemFile !== undefined ? (await readTextFile(flags.systemFile, "system prompt file")).trim() : flags.system;
  const prompt = assemblePrompt(promptArgs, await readPipedStdin(ctx.stdin));

  const settings = await readSettings(ctx.env);
  const sampling = resolveSampling(flags, settings);
  const prepared = await resolveAndLoad(ctx, modelRef, (resolved) =>
    resolveLoadOptions(flags, ctx.env, settings, ctx.verbose, modelFacts(resolved.path)),
  );
  try {
    const { loaded } = prepared;
    const useChat = flags.raw !== true && loaded.summary.hasChatTemplate;
    if (flags.raw !== true && !loaded.summary.hasChatTemplate && ctx.verbose) {
      ctx.out.diag(`${loaded.summary.fileName} has no chat template: using plain completion`);
    }
    if (!useChat && systemPrompt !== undefined) {
      // Plain completion has no place for a system prompt: say so rather than drop it silently.
      ctx.out.warn(
        `the system prompt is not used: ${flags.raw === true ? "--raw is plain completion" : `${loaded.summary.fileName} has no chat template`}, which has no system prompt`,
      );
    }
    const request: GenerateRequest = {
      prompt,
      chat: useChat,
      systemPrompt,
      maxTokens: sampling.maxTokens,
      stop: flags.stop ?? [],
      sampling,
      jsonSchema,
      truncate: flags.truncate === true,
    };
    const { generate } = await import("../../engine/generate.js");
    const streaming = flags.json !== true;
    let endedWithNewline = true;
    const result = await generate(loaded, request, {
      signal: ctx.signal,
      ...(streaming
        ? {
            onText: (text: string) => {
              if (ctx.stdoutClosed()) return;
              ctx.out.text(text);
              if (text.length > 0) endedWithNewline = text.endsWith("\n");
            },
          }
        : {}),
    });
    const { threadpoolStatus } = await import("../../engine/threadpool.js");
    const pool = threadpoolStatus();
    const threadpool = pool.decodesWithPool > 0 ? "persistent" : "per-decode";
    if (ctx.verbose) {
      ctx.out.diag(
        pool.decodesWithPool > 0
          ? `cpu threads: persistent threadpool for ${pool.decodesWithPool} decodes, ${pool.decodeMs.toFixed(0)} ms inside llama_decode (${pool.library})`
          : `cpu threads: started per decode (threadpool shim ${pool.problem || "unused"})`,
      );
    }
    if (result.truncatedPromptTokens > 0) {
      ctx.out.warn(`the prompt was cut to fit the context: its first ${result.truncatedPromptTokens} tokens were dropped`);
    }
    const timings = {
      loadMs: prepared.loadMs,
      ttftMs: result.timings.ttftMs,
      promptTokensPerSecond: result.timings.promptTokensPerSecond,
      generationTokensPerSecond: result.timings.generationTokensPerSecond,
      totalMs: prepared.loadMs + result.timings.totalMs,
    };
    if (flags.json) {
      ctx.out.json({
        text: result.text,
        model: { path: loaded.summary.path, fileName: loaded.summary.fileName, name: prepared.resolved.displayName },
        promptTokens: result.promptTokens,
        generatedTokens: result.generatedTokens,
        stopReason: result.stopReason,
        truncatedPromptTokens: result.truncatedPromptTokens,
        chatTemplate: useChat,
        timings,
        sampling: {
          temperature: sampling.temperature,
          topK: sampling.topK,
          topP: sampling.topP,
          minP: sampling.minP,
          repeatPenalty: sampling.repeatPenalty,
          seed: sampling.seed,
          maxTokens: sampling.maxTokens,
          stop: request.stop,
        },
        load: { contextSize: loaded.summary.contextSize, threads: loaded.summary.threads, batchThreads: loaded.summary.batchThreads, gpu: loaded.summary.gpu, gpuLayers: loaded.summary.gpuLayers, threadpool },
      });
    } else if (!endedWithNewline && ctx.out.stdoutIsTTY && !ctx.stdoutClosed()) {
      // Keep the shell prompt off the answer's last line on a terminal; pipes get the bytes as generated.
      ctx.out.text("\n");
    }
    if (flags.stats) {
      ctx.out.diag(
        formatRunStats({
          ...timings,
          totalMs: timings.totalMs,
          promptTokens: result.promptTokens,
          promptMs: result.timings.promptMs,
          generatedTokens: result.generatedTokens,
          generationMs: result.timings.generationMs,
        }),
      );
    }
    if (jsonSchema !== undefined && result.stopReason === "maxTokens" && !isJson(result.text)) {
      // The grammar holds only while generating: cut by -n, the JSON is unfinished. A script must not
      // take it for an answer, so this fails (exit 1) after what was generated has been written.
      throw new LmrunError(`the output reached --max-tokens ${sampling.maxTokens} before the JSON was complete`, { hint: "Raise -n/--max-tokens" });
    }
  } finally {
    await prepared.loaded.dispose();
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
