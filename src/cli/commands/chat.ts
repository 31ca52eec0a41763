import fs from "node:fs";
import type { Command } from "commander";
import { readSettings } from "../../config/config.js";
import { lmrunPaths } from "../../config/paths.js";
import { readInputText } from "../../io/inputFile.js";
import { colorEnabled } from "../../io/output.js";
import { isInteractive } from "../../io/tty.js";
import type { CommandContext } from "../context.js";
import { UsageError } from "../../errors.js";
import { acceptLlamaCppSpellings, LOAD_SPELLINGS, SAMPLING_SPELLINGS } from "../llamaCppFlags.js";
import {
  addLoadOptions,
  addSamplingOptions,
  describeAppliedTuning,
  givenSeed,
  modelFacts,
  resolveLoadOptionsAndTuning,
  resolveSampling,
  type LoadFlags,
  type SamplingFlags,
  warnIfThreadsAboveCores,
} from "../modelOptions.js";
import { contextRaisedNote, resolveAndLoad } from "../prepareModel.js";

interface ChatFlags extends LoadFlags, SamplingFlags {
  system?: string;
  systemFile?: string;
  resume?: string | true;
  sessions?: boolean;
  json?: boolean;
  local?: boolean;
  server?: string;
  /** --no-think sets false. */
  think?: boolean;
}

export function registerChat(program: Command, ctx: CommandContext): void {
  const command = program
    .command("chat")
    .description("full-screen chat with a model in the terminal (for scripts and pipes, use `lmrun run`)")
    .argument("[model]", "a .gguf path, a model name, or `tiny` (default: the resumed session's model)")
    .option("-s, --system <text>", "system prompt")
    .option("--system-file <file>", "read the system prompt from a file")
    .option("--resume [id]", "continue a saved session (default: the most recent)")
    .option("--sessions", "list saved sessions and exit")
    .option("--json", "with --sessions: print JSON")
    .option("--no-think", "a thinking model (Qwen3, DeepSeek R1 ...) answers without thinking first")
    .option("--local", "run the model in-process even when an lmrun server is running")
    .option("--server <url>", "chat with a model of the lmrun server at this URL (default: the running one, LMRUN_HOST)");
  // --sessions only lists files: it loads no model, so it never runs as the RPC child.
  addSamplingOptions(addLoadOptions(command, { inProcess: (flags) => flags.sessions === true }));
  acceptLlamaCppSpellings(command, { ...LOAD_SPELLINGS, ...SAMPLING_SPELLINGS }, "-n -1 generates until the model stops or the context is full; --seed -1 draws a random seed.");
  command.action(async (model: string | undefined, flags: ChatFlags) => {
    await chatCommand(ctx, model, flags);
  });
}

async function chatCommand(ctx: CommandContext, modelArg: string | undefined, flags: ChatFlags): Promise<void> {
  const { SessionStore, newSessionId } = await import("../../chat/sessionStore.js");
  const paths = lmrunPaths(ctx.env);
  const store = new SessionStore(paths.sessions);
  if (flags.sessions) {
    const { formatSessionsTable, sessionsJson } = await import("../../chat/sessionList.js");
    const sessions = await store.list();
    if (flags.json) ctx.out.json(sessionsJson(sessions));
    else ctx.out.text(formatSessionsTable(sessions));
    return;
  }
  if (flags.json) throw new UsageError("--json goes with --sessions", "The chat itself is interactive; use `lmrun run --json` for a JSON reply");
  if (!isInteractive(ctx)) {
    throw new UsageError("chat needs a terminal (stdin and stdout are not both a TTY)", 'Use `lmrun run MODEL "prompt"` in scripts and pipes');
  }
  if (flags.system !== undefined && flags.systemFile !== undefined) throw new UsageError("give --system or --system-file, not both");

  const { findSessionToResume, resumedSampling } = await import("../../chat/resume.js");
  const resumed = flags.resume !== undefined ? await findSessionToResume(store, flags.resume === true ? undefined : flags.resume) : undefined;
  const settings = await readSettings(ctx.env);
  // `npx lmrun chat` with nothing configured opens the bundled model: it works offline, and the
  // notice says how to get a real assistant.
  // A resumed session loads the file it used (its path) under the name it was given (`tiny`, not the file's name).
  const resumedModel = modelArg === undefined && resumed !== undefined ? resumed.model : undefined;
  const modelRef = modelArg ?? (resumedModel?.path !== undefined && fs.existsSync(resumedModel.path) ? resumedModel.path : resumedModel?.name) ?? settings.defaultModel ?? "tiny";
  const notice =
    modelArg === undefined && resumed === undefined && settings.defaultModel === undefined
      ? "Demo model `tiny` (a tiny story generator). For an assistant: lmrun chat qwen2.5:0.5b"
      : undefined;
  const system =
    flags.systemFile !== undefined ? (await readInputText(flags.systemFile, { what: "system prompt file", flag: "--system-file" })).trim() : (flags.system ?? resumed?.system);
  // Unlike `run`, no seed is drawn up front: each reply gets a fresh one unless --seed or /set seed fixes it.
  const given = {
    temperature: flags.temp !== undefined,
    topK: flags.topK !== undefined,
    topP: flags.topP !== undefined,
    minP: flags.minP !== undefined,
    repeatPenalty: flags.repeatPenalty !== undefined,
    seed: givenSeed(flags) !== undefined,
    maxTokens: flags.maxTokens !== undefined,
  };
  const sampling = resumedSampling({ ...resolveSampling(flags, settings), seed: givenSeed(flags) }, given, resumed?.sampling);

  warnIfThreadsAboveCores(ctx, flags);
  const think = flags.think === false ? false : undefined;
  const loadFor = async (ref: string, quietProgress: boolean, name?: string) => {
    // A running server that serves the model chats without loading it here (see client/route.ts).
    const { routeModel, mayFallBack } = await import("../../client/route.js");
    const route = await routeModel(flags, ref, ctx.env, { signal: ctx.signal, ...(ctx.verbose && !quietProgress ? { diag: (m: string) => ctx.out.diag(m) } : {}) });
    if (route !== undefined) {
      const { RemoteChatEngine } = await import("../../client/chat.js");
      try {
        const engine = await RemoteChatEngine.create(route.client, route.model, { systemPrompt: system, signal: ctx.signal, think });
        return { engine, path: engine.modelPath };
      } catch (error) {
        route.client.close();
        if (!mayFallBack(route, error)) throw error;
      }
    }
    const prepared = await resolveAndLoad(
      ctx,
      ref,
      (r) => {
        const facts = modelFacts(r.path);
        const chosen = resolveLoadOptionsAndTuning(flags, ctx.env, settings, ctx.verbose, facts);
        if (chosen.tuned !== undefined && !quietProgress && !ctx.quiet) ctx.out.diag(`note: ${describeAppliedTuning(facts.fileName, chosen.tuned)}`);
        return { ...chosen.options, generationOnly: true };
      },
      { quietProgress },
    );
    const raised = contextRaisedNote(prepared.loaded.summary);
    if (raised !== undefined && !quietProgress) ctx.out.warn(raised);
    const { LlamaChatEngine } = await import("../../engine/chatSession.js");
    return { engine: await LlamaChatEngine.create(prepared.loaded, { modelName: name ?? prepared.resolved.displayName, systemPrompt: system, think }), path: prepared.resolved.path };
  };
  const first = await loadFor(modelRef, false, resumedModel?.name);
  const { startChat } = await importTuiOutsideCi();
  const outcome = await startChat({
    engine: first.engine,
    sampling,
    system,
    session: resumed ? { id: resumed.id, createdAt: resumed.createdAt, modelPath: first.path } : { id: newSessionId(), createdAt: new Date().toISOString(), modelPath: first.path },
    messages: resumed?.messages,
    notice,
    stdin: ctx.stdin as NodeJS.ReadStream,
    stdout: ctx.stdout as NodeJS.WriteStream,
    stderr: ctx.stderr as NodeJS.WriteStream,
    env: ctx.env,
    color: colorEnabled(ctx.stdout, ctx.env),
    store,
    historyFile: paths.history,
    // Loaded quietly: a spinner on stderr would tear through the chat screen.
    switchModel: async (ref) => (await loadFor(ref, true)).engine,
    signal: ctx.signal,
  });
  if (outcome.saveError) ctx.out.warn(`the session could not be saved: ${outcome.saveError}`);
  else if (outcome.saved) ctx.out.info(`session ${outcome.sessionId} saved; continue it with: lmrun chat --resume ${outcome.sessionId}`);
}

/**
 * Ink holds every frame until exit when it thinks it runs in CI; chat only runs on a terminal,
 * so CI is hidden while Ink loads. React's development build re-checks every render: use the
 * production one unless NODE_ENV says otherwise.
 */
async function importTuiOutsideCi(): Promise<typeof import("../../tui/index.js")> {
  process.env.NODE_ENV ??= "production";
  const saved = { CI: process.env.CI, CONTINUOUS_INTEGRATION: process.env.CONTINUOUS_INTEGRATION };
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  try {
    return await import("../../tui/index.js");
  } finally {
    for (const [key, value] of Object.entries(saved)) if (value !== undefined) process.env[key] = value;
  }
}
