import type { Command } from "commander";
import { readSettings } from "../../config/config.js";
import type { RunOutcome, RunSpec } from "../../client/run.js";
import type { GenerateRequest } from "../../engine/types.js";
import { readInputText } from "../../io/inputFile.js";
import { formatRunStats } from "../../io/stats.js";
import { readPipedStdin, stdinKind } from "../../io/tty.js";
import type { CommandContext } from "../context.js";
import { LmrunError, UsageError } from "../../errors.js";
import { acceptLlamaCppSpellings, LOAD_SPELLINGS, SAMPLING_SPELLINGS } from "../llamaCppFlags.js";
import {
  addLoadOptions,
  addSamplingOptions,
  describeAppliedTuning,
  modelFacts,
  resolveLoadOptionsAndTuning,
  resolveSampling,
  type AppliedTuning,
  type LoadFlags,
  type SamplingFlags,
  warnIfThreadsAboveCores,
} from "../modelOptions.js";
import { collect } from "../parse.js";
import { contextRaisedNote, resolveAndLoad } from "../prepareModel.js";
import { assemblePrompt, readJsonSchemaFile } from "../prompt.js";

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
  stdin?: boolean;
  local?: boolean;
  server?: string;
  /** --no-think sets false. */
  think?: boolean;
  hideThinking?: boolean;
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
    .option("--no-stdin", "never read stdin, even piped (as ssh -n): for `while read` loops, whose input the first run would take")
    .option("--stats", "print timing statistics to stderr when done")
    .option("--json", "print one JSON object with the text, token counts and timings")
    .option("--no-think", "a thinking model (Qwen3, DeepSeek R1 ...) answers without thinking first")
    .option("--hide-thinking", "do not show a thinking model's thoughts (they go to stderr, apart from the answer on stdout)")
    .option("--local", "run in-process even when an lmrun server is running")
    .option("--server <url>", "send the prompt to the lmrun server at this URL (default: the running one, LMRUN_HOST)");
  addSamplingOptions(addLoadOptions(command));
  acceptLlamaCppSpellings(command, { ...LOAD_SPELLINGS, ...SAMPLING_SPELLINGS }, "-n -1 generates until the model stops or the context is full; --seed -1 draws a random seed.");
  command.action(async (model: string, promptArgs: string[], flags: RunFlags) => {
    await runCommand(ctx, model, promptArgs, flags);
  });
}

async function runCommand(ctx: CommandContext, modelRef: string, promptArgs: string[], flags: RunFlags): Promise<void> {
  if (flags.format !== undefined && flags.format !== "json") throw new UsageError(`unknown --format "${flags.format}"`, "The only format is json");
  if (flags.system !== undefined && flags.systemFile !== undefined) throw new UsageError("give --system or --system-file, not both");
  if (flags.format !== undefined && flags.jsonSchema !== undefined) throw new UsageError("give --format json or --json-schema, not both", "--json-schema already constrains the output to JSON");
  const jsonSchema = flags.jsonSchema !== undefined ? await readJsonSchemaFile(flags.jsonSchema) : flags.format === "json" ? ("json" as const) : undefined;
  const systemPrompt = flags.systemFile !== undefined ? (await readInputText(flags.systemFile, { what: "system prompt file", flag: "--system-file" })).trim() : flags.system;
  // With the instruction in the arguments, the model loads while a slow pipe is still being read
  // (`sleep 6 | lmrun run M hi` waited 6 s before loading); without it, stdin is the prompt and comes first.
  const promptReady = promptMaterial(ctx, promptArgs, flags.stdin !== false).then((piped) =>
    assemblePrompt(promptArgs, piped, { terminal: stdinKind(ctx.stdin) === "terminal" }),
  );
  promptReady.catch(() => {}); // awaited below; a failed load must not leave it unhandled
  if (promptArgs.join("").trim() === "") await promptReady;

  const settings = await readSettings(ctx.env);
  const sampling = resolveSampling(flags, settings);
  warnIfThreadsAboveCores(ctx, flags);
  const specFor = (prompt: string): RunSpec => ({ prompt, systemPrompt, raw: flags.raw === true, stop: flags.stop ?? [], jsonSchema, truncate: flags.truncate === true, sampling, ...(flags.think === false ? { think: false } : {}) });
  const printer = new RunPrinter(ctx, flags.json !== true, flags.json !== true && flags.hideThinking !== true);

  // A running server answers without loading anything (see client/route.ts for what goes there).
  const { routeModel, mayFallBack } = await import("../../client/route.js");
  const route = await routeModel(flags, modelRef, ctx.env, { signal: ctx.signal, ...(ctx.verbose ? { diag: (m: string) => ctx.out.diag(m) } : {}) });
  if (route !== undefined) {
    const { runThroughServer } = await import("../../client/run.js");
    try {
      const spec = specFor(await promptReady);
      const outcome = await runThroughServer(route.client, route.model, spec, { onText: printer.onText, onThought: printer.onThought, signal: ctx.signal });
      if (!outcome.chatTemplate && systemPrompt !== undefined) warnUnusedSystem(ctx, spec, outcome.model.fileName);
      reportRun(ctx, flags, spec, outcome, printer);
      return;
    } catch (error) {
      if (ctx.signal.aborted) return;
      if (!printer.wroteAny && mayFallBack(route, error)) {
        if (ctx.verbose) ctx.out.diag(`${(error as Error).message}: running in-process`);
      } else {
        throw error;
      }
    } finally {
      route.client.close();
    }
  }

  let tuned: AppliedTuning | undefined;
  const prepared = await resolveAndLoad(ctx, modelRef, (resolved) => {
    const facts = modelFacts(resolved.path);
    const chosen = resolveLoadOptionsAndTuning(flags, ctx.env, settings, ctx.verbose, facts);
    tuned = chosen.tuned;
    // A saved --tune result changes the threads: never silently.
    if (tuned !== undefined && !ctx.quiet) ctx.out.diag(`note: ${describeAppliedTuning(facts.fileName, tuned)}`);
    return { ...chosen.options, generationOnly: true };
  });
  try {
    const spec = specFor(await promptReady);
    const { loaded } = prepared;
    const useChat = flags.raw !== true && loaded.summary.hasChatTemplate;
    if (flags.raw !== true && !loaded.summary.hasChatTemplate && ctx.verbose) {
      ctx.out.diag(`${loaded.summary.fileName} has no chat template: using plain completion`);
    }
    if (!useChat && systemPrompt !== undefined) warnUnusedSystem(ctx, spec, loaded.summary.fileName);
    const request: GenerateRequest = {
      prompt: spec.prompt,
      chat: useChat,
      systemPrompt,
      maxTokens: sampling.maxTokens,
      stop: spec.stop,
      sampling,
      jsonSchema,
      truncate: spec.truncate,
      ...(spec.think !== undefined ? { think: spec.think } : {}),
    };
    const { generate } = await import("../../engine/generate.js");
    const result = await generate(loaded, request, { signal: ctx.signal, onThought: printer.onThought, ...(printer.streaming ? { onText: printer.onText } : {}) });
    const { threadpoolStatus } = await import("../../engine/threadpool.js");
    const pool = threadpoolStatus();
    const threadpool = pool.decodesWithPool > 0 ? "persistent" : "per-decode";
    if (ctx.verbose) {
      ctx.out.diag(
        pool.decodesWithPool > 0
          ? `cpu threads: persistent threadpool for ${pool.decodesWithPool} decodes, ${pool.decodeMs.toFixed(0)} ms inside llama_decode (${pool.library})${
              pool.adaptive ? `; tokens by threads (following the machine's load): ${describeTokensByThreads(pool.tokensByThreads)}` : ""
            }`
          : `cpu threads: started per decode (threadpool shim ${pool.problem || "unused"})`,
      );
    }
    // After generating: a prompt too long for the context gets an error that already says this.
    const raised = contextRaisedNote(loaded.summary);
    if (raised !== undefined) ctx.out.warn(raised);
    const { summary } = loaded;
    reportRun(
      ctx,
      flags,
      spec,
      {
        text: result.text,
        ...(result.thinking !== undefined ? { thinking: result.thinking } : {}),
        model: { path: summary.path, fileName: summary.fileName, name: prepared.resolved.displayName },
        promptTokens: result.promptTokens,
        generatedTokens: result.generatedTokens,
        stopReason: result.stopReason,
        truncatedPromptTokens: result.truncatedPromptTokens,
        chatTemplate: useChat,
        loadMs: prepared.loadMs,
        timings: result.timings,
        load: {
          contextSize: summary.contextSize,
          requestedContextSize: summary.requestedContextSize ?? null,
          threads: summary.threads,
          batchThreads: summary.batchThreads,
          gpu: summary.gpu,
          gpuLayers: summary.gpuLayers,
          threadpool,
          tuned: tuned ?? null,
          // Generated tokens by the threads they ran with, when lmrun's own thread count followed the machine's load.
          ...(pool.adaptive ? { generationThreads: pool.tokensByThreads } : {}),
        },
      },
      printer,
    );
  } finally {
    await prepared.loaded.dispose();
  }
}

/**
 * Piped stdin is the prompt's material (README: `cat report.txt | lmrun run M "Summarise"`), so a
 * pipe is read to its end. --no-stdin (as ssh -n) leaves stdin alone, for `while read` loops whose
 * input the first call would otherwise swallow. A terminal is never read, nor, when the prompt is
 * in the arguments, a device that may never end.
 */
async function promptMaterial(ctx: CommandContext, promptArgs: string[], readStdin: boolean): Promise<string | undefined> {
  if (!readStdin) return undefined;
  const kind = stdinKind(ctx.stdin);
  if (kind === "terminal" || (kind === "device" && promptArgs.join("").trim() !== "")) return undefined;
  return readPipedStdin(ctx.stdin);
}

function warnUnusedSystem(ctx: CommandContext, spec: RunSpec, fileName: string): void {
  // Plain completion has no place for a system prompt: say so rather than drop it silently.
  ctx.out.warn(`the system prompt is not used: ${spec.raw ? "--raw is plain completion" : `${fileName} has no chat template`}, which has no system prompt`);
}

/**
 * Streams the answer to stdout as it comes (unless --json) and remembers how it ended. A thinking
 * model's thoughts go to stderr between "Thinking..." and "...done thinking." (ollama's words), dim on
 * a colour terminal, so stdout holds the answer alone.
 */
class RunPrinter {
  wroteAny = false;
  private endedWithNewline = true;
  private thinking: "no" | "open" | "done" = "no";
  private thoughtEndsLine = false;
  constructor(
    private readonly ctx: CommandContext,
    readonly streaming: boolean,
    private readonly showThoughts: boolean,
  ) {}
  readonly onThought = (text: string): void => {
    if (!this.showThoughts || text.length === 0) return;
    const dim = (s: string) => (this.ctx.out.color ? `\x1b[2m${s}\x1b[22m` : s);
    if (this.thinking !== "open") this.ctx.out.stderr.write(dim("Thinking...\n"));
    this.thinking = "open";
    this.ctx.out.stderr.write(dim(text));
    this.thoughtEndsLine = text.endsWith("\n");
  };
  private endThoughts(): void {
    if (this.thinking !== "open") return;
    this.thinking = "done";
    const newline = this.thoughtEndsLine ? "" : "\n";
    this.ctx.out.stderr.write(this.ctx.out.color ? `${newline}\x1b[2m...done thinking.\x1b[22m\n\n` : `${newline}...done thinking.\n\n`);
  }
  readonly onText = (text: string): void => {
    if (text.length > 0) this.endThoughts();
    if (!this.streaming || this.ctx.stdoutClosed()) return;
    this.ctx.out.text(text);
    if (text.length > 0) {
      this.wroteAny = true;
      this.endedWithNewline = text.endsWith("\n");
    }
  };
  /** Keep the shell prompt off the answer's last line on a terminal; pipes get the bytes as generated. */
  finishLine(): void {
    this.endThoughts();
    if (this.streaming && !this.endedWithNewline && this.ctx.out.stdoutIsTTY && !this.ctx.stdoutClosed()) this.ctx.out.text("\n");
  }
}

/** What run prints after the text, the same whether a server or this process generated it. */
function reportRun(ctx: CommandContext, flags: RunFlags, spec: RunSpec, outcome: RunOutcome, printer: RunPrinter): void {
  const { sampling } = spec;
  if (outcome.truncatedPromptTokens > 0) {
    ctx.out.warn(`the prompt was cut to fit the context: its first ${outcome.truncatedPromptTokens} tokens were dropped`);
  }
  const timings = {
    loadMs: outcome.loadMs,
    ttftMs: outcome.timings.ttftMs,
    promptTokensPerSecond: outcome.timings.promptTokensPerSecond,
    generationTokensPerSecond: outcome.timings.generationTokensPerSecond,
    totalMs: outcome.loadMs + outcome.timings.totalMs,
  };
  if (flags.json) {
    ctx.out.json({
      text: outcome.text,
      ...(outcome.thinking !== undefined ? { thinking: outcome.thinking } : {}),
      model: outcome.model,
      promptTokens: outcome.promptTokens,
      generatedTokens: outcome.generatedTokens,
      stopReason: outcome.stopReason,
      truncatedPromptTokens: outcome.truncatedPromptTokens,
      chatTemplate: outcome.chatTemplate,
      timings,
      sampling: {
        temperature: sampling.temperature,
        topK: sampling.topK,
        topP: sampling.topP,
        minP: sampling.minP,
        repeatPenalty: sampling.repeatPenalty,
        seed: sampling.seed,
        maxTokens: sampling.maxTokens,
        stop: spec.stop,
      },
      load: outcome.load,
    });
  } else {
    printer.finishLine();
  }
  if (flags.stats) {
    ctx.out.diag(
      formatRunStats({
        ...timings,
        promptTokens: outcome.promptTokens,
        promptMs: outcome.timings.promptMs,
        generatedTokens: outcome.generatedTokens,
        generationMs: outcome.timings.generationMs,
      }),
    );
  }
  if (outcome.thinking !== undefined && outcome.text === "" && outcome.stopReason === "maxTokens") {
    // A thinking model that spent -n on its thoughts: an empty answer must not pass for one (exit 1).
    throw new LmrunError(`the model's thoughts used all of --max-tokens ${sampling.maxTokens} before its answer began`, {
      hint: "Raise -n/--max-tokens (-1: until the context is full), or pass --no-think",
    });
  }
  if (spec.jsonSchema !== undefined && outcome.stopReason === "maxTokens" && !isJson(outcome.text)) {
    // The grammar holds only while generating: cut by -n, the JSON is unfinished. A script must not
    // take it for an answer, so this fails (exit 1) after what was generated has been written.
    throw new LmrunError(`the output reached --max-tokens ${sampling.maxTokens} before the JSON was complete`, { hint: "Raise -n/--max-tokens" });
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

function describeTokensByThreads(tokensByThreads: Record<string, number>): string {
  const entries = Object.entries(tokensByThreads);
  return entries.length === 0 ? "none yet" : entries.map(([threads, tokens]) => `${tokens} with ${threads}`).join(", ");
}
