import path from "node:path";
import os from "node:os";
import { useCallback, useEffect, useMemo, useReducer, useRef } from "react";
import { parseTranscript, renderTranscript, transcriptTurns, userTurnText, type Transcript } from "../../chat/transcript.js";
import type { ChatSampling } from "../../engine/chatTypes.js";
import { shortcutHelp } from "../keymap.js";
import { SLASH_COMMANDS, type SlashContext } from "../slash.js";
import { statsLines } from "../format.js";
import type { ChatStartOptions } from "../services.js";
import { chatReducer, initialChatState, lastUserItem, savedMessages, type Attachment, type ChatItem } from "../state/chatReducer.js";

const MAX_ATTACHMENT_BYTES = 1_000_000;

function expandPath(file: string): string {
  return path.resolve(file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Drives the chat engine into the reducer. Streamed text is collected and handed to React
 * every `flushMs` (50 ms), so a fast model costs ~20 renders a second, not one per token.
 */
export function useChat(options: ChatStartOptions & { exit: () => void }) {
  const { services } = options;
  const flushMs = options.flushMs ?? 50;
  const [state, dispatch] = useReducer(chatReducer, undefined, () => {
    let initial = initialChatState({
      modelName: options.engine.modelName,
      sampling: options.sampling,
      system: options.system,
      context: options.engine.contextUsage(),
      messages: options.messages,
    });
    if (options.messages && options.messages.length > 0) {
      // A resumed session: the model must see the conversation on the screen (idempotent, so safe here).
      options.engine.setHistory(transcriptTurns(options.system, savedMessages(initial.items)));
      initial = { ...initial, context: options.engine.contextUsage() };
    }
    return options.notice ? chatReducer(initial, { type: "notice", text: options.notice, tone: "info" }) : initial;
  });
  const stateRef = useRef(state);
  stateRef.current = state;
  const engineRef = useRef(options.engine);
  const abortRef = useRef<AbortController | null>(null);
  const sessionRef = useRef({ ...options.session });
  /** Set when a failed reply left the engine's history behind the screen's; fixed before the next send. */
  const needsSyncRef = useRef(false);
  const exitRef = useRef(options.exit);
  exitRef.current = options.exit;

  // Leaving the chat (Ctrl+D, /exit, SIGTERM) stops a reply still being generated.
  useEffect(() => () => abortRef.current?.abort(), []);

  const syncEngine = useCallback((items: ChatItem[], system: string | undefined) => {
    engineRef.current.setHistory(transcriptTurns(system, savedMessages(items)));
  }, []);

  // Save after every change of the conversation, never mid-reply.
  useEffect(() => {
    if (state.phase === "generating") return;
    const messages = savedMessages(state.items);
    if (messages.length === 0) return;
    services.saveSession(toTranscript(state, sessionRef.current, services.now(), messages));
  }, [state.items, state.system, state.phase, state.modelName, state.sampling, services]);

  const notice = useCallback((text: string, tone: "info" | "warn" | "error" = "info") => dispatch({ type: "notice", text, tone }), []);

  const send = useCallback(
    async (text: string, attachments: Attachment[]) => {
      const engine = engineRef.current;
      if (needsSyncRef.current) {
        syncEngine(stateRef.current.items, stateRef.current.system);
        needsSyncRef.current = false;
      }
      const before = stateRef.current.context;
      dispatch({ type: "submit", text, attachments });
      const controller = new AbortController();
      abortRef.current = controller;
      let full = "";
      let pendingText = "";
      let pendingThinking = "";
      let pendingTokens = 0;
      let lastFlush = performance.now();
      let immediate: ReturnType<typeof setImmediate> | null = null;
      let fallback: ReturnType<typeof setTimeout> | null = null;
      const flush = () => {
        immediate = null;
        if (fallback) clearTimeout(fallback);
        fallback = null;
        lastFlush = performance.now();
        if (pendingText === "" && pendingThinking === "" && pendingTokens === 0) return;
        dispatch({ type: "chunk", text: pendingText, thinking: pendingThinking, tokens: pendingTokens });
        pendingText = "";
        pendingThinking = "";
        pendingTokens = 0;
      };
      // Redraw from setImmediate right after a token: by then the next token's decode is already
      // running on llama.cpp's threads, so the render overlaps it instead of delaying it.
      // The timer only covers a model that goes quiet between tokens.
      const schedule = () => {
        if (immediate) return;
        if (performance.now() - lastFlush >= flushMs) immediate = setImmediate(flush);
        else fallback ??= setTimeout(flush, 2 * flushMs);
      };
      const cancelFlush = () => {
        if (immediate) clearImmediate(immediate);
        if (fallback) clearTimeout(fallback);
      };
      try {
        const result = await engine.send(userTurnText({ text, attachments }), {
          sampling: stateRef.current.sampling,
          signal: controller.signal,
          onText: (chunk) => {
            full += chunk;
            pendingText += chunk;
            schedule();
          },
          onThought: (chunk) => {
            pendingThinking += chunk;
            schedule();
          },
          onTokens: (count) => {
            pendingTokens += count;
            schedule();
          },
        });
        cancelFlush();
        const context = engine.contextUsage();
        dispatch({ type: "done", text: result.text, stats: result.stats, stopped: controller.signal.aborted, context });
        if (context.historyTokens > context.size && before.historyTokens <= before.size) {
          notice(
            `the conversation (${context.historyTokens} tokens) no longer fits the ${context.size}-token context: the oldest turns were dropped from what the model sees`,
            "warn",
          );
        }
      } catch (error) {
        cancelFlush();
        dispatch({ type: "failed", message: `generation failed: ${errorText(error)}`, partial: full });
        needsSyncRef.current = true;
      } finally {
        abortRef.current = null;
      }
    },
    [flushMs, notice, syncEngine],
  );

  const redrawWith = useCallback(
    (action: Parameters<typeof dispatch>[0]) => {
      services.clearScreen();
      dispatch(action);
    },
    [services],
  );

  const slash: SlashContext = useMemo(
    () => ({
      notice,
      help: () => {
        const commands = SLASH_COMMANDS.map((c) => {
          const usage = `/${c.name}${c.args ? ` ${c.args}` : ""}`;
          const aliases = c.aliases.length > 0 ? ` (also ${c.aliases.map((a) => `/${a}`).join(", ")})` : "";
          return `${usage.length < 27 ? usage.padEnd(28) : `${usage}  `}${c.help}${aliases}`;
        });
        notice(["Commands:", ...commands, "", "Keys:", ...shortcutHelp(), "", '"""  starts a multi-line message; a closing """ ends it'].join("\n"));
      },
      clear: () => {
        engineRef.current.reset();
        needsSyncRef.current = false;
        sessionRef.current = { ...sessionRef.current, id: services.newSessionId(), createdAt: services.now().toISOString() };
        redrawWith({ type: "clear" });
        notice("started over: the conversation is cleared (the previous one stays saved)");
      },
      setSystem: (text) => {
        engineRef.current.setSystem(text);
        dispatch({ type: "setSystem", text });
        notice(text ? `system prompt set (${text.length} chars)` : "system prompt removed");
      },
      setSampling: (patch: Partial<ChatSampling>, label: string) => {
        dispatch({ type: "setSampling", patch });
        // A message sent before the next render (typed right after /set) must already use it.
        stateRef.current = { ...stateRef.current, sampling: { ...stateRef.current.sampling, ...patch } };
        notice(`${label}: applies from the next reply`);
      },
      switchModel: async (ref) => {
        if (!services.switchModel) return notice("switching models is not available here", "error");
        if (stateRef.current.phase !== "idle") return notice("wait for the reply to finish (or stop it with Ctrl+C) before switching", "error");
        dispatch({ type: "loading" });
        try {
          const next = await services.switchModel(ref);
          const old = engineRef.current;
          next.setHistory(old.getHistory());
          engineRef.current = next;
          await old.dispose();
          dispatch({ type: "modelReady", modelName: next.modelName, context: next.contextUsage() });
          notice(`switched to ${next.modelName} (${next.contextSize}-token context); the conversation continues`);
        } catch (error) {
          dispatch({ type: "loadFailed", message: `cannot switch to ${ref}: ${errorText(error)}` });
        }
      },
      regenerate: async () => {
        const current = stateRef.current;
        if (current.phase !== "idle") return notice("a reply is still being generated", "error");
        const last = lastUserItem(current.items);
        if (!last) return notice("nothing to regenerate yet", "error");
        const remaining = current.items.slice(0, current.items.indexOf(last));
        syncEngine(remaining, current.system);
        needsSyncRef.current = false;
        redrawWith({ type: "dropLastExchange" });
        await send(last.text, last.attachments);
      },
      attach: async (file) => {
        const full = expandPath(file);
        try {
          const text = await services.readTextFile(full);
          if (Buffer.byteLength(text) > MAX_ATTACHMENT_BYTES) return notice(`${file} is over 1 MB: attach a smaller text file`, "error");
          if (text.includes("\u0000")) return notice(`${file} looks binary: /read takes text files`, "error");
          dispatch({ type: "attach", attachment: { name: path.basename(full), text } });
          notice(`attached ${path.basename(full)} (${text.length} chars): it goes with your next message`);
        } catch (error) {
          notice(`cannot read ${file}: ${errorText(error)}`, "error");
        }
      },
      save: async (file) => {
        const full = expandPath(file);
        const transcript = toTranscript(stateRef.current, sessionRef.current, services.now());
        try {
          await services.writeTextFile(full, renderTranscript(full, transcript));
          notice(`saved ${transcript.messages.length} messages to ${full}`);
        } catch (error) {
          notice(`cannot save to ${file}: ${errorText(error)}`, "error");
        }
      },
      load: async (file) => {
        const full = expandPath(file);
        if (stateRef.current.phase !== "idle") return notice("wait for the reply to finish before loading", "error");
        try {
          const transcript = parseTranscript(full, await services.readTextFile(full));
          const system = transcript.system ?? stateRef.current.system;
          engineRef.current.setHistory(transcriptTurns(system, transcript.messages));
          redrawWith({ type: "replaceMessages", messages: transcript.messages, system, context: engineRef.current.contextUsage() });
          notice(`loaded ${transcript.messages.length} messages from ${full}`);
        } catch (error) {
          notice(`cannot load ${file}: ${errorText(error)}`, "error");
        }
      },
      stats: () => notice(statsLines(stateRef.current.lastStats, stateRef.current.context).join("\n")),
      exit: () => exitRef.current(),
    }),
    [notice, redrawWith, send, services, syncEngine],
  );

  /** Stops the reply being generated; returns false when nothing was running. */
  const stop = useCallback((): boolean => {
    if (!abortRef.current) return false;
    abortRef.current.abort();
    return true;
  }, []);

  const redraw = useCallback(() => redrawWith({ type: "redraw" }), [redrawWith]);

  return { state, dispatch, send, slash, stop, redraw, notice };
}

/** The conversation as it is saved: automatically after each reply, and by /save. */
function toTranscript(
  state: { modelName: string; system?: string | undefined; sampling: Transcript["sampling"]; items: ChatItem[] },
  session: { id: string; createdAt: string; modelPath?: string | undefined },
  now: Date,
  messages = savedMessages(state.items),
): Transcript {
  return {
    version: 1,
    id: session.id,
    createdAt: session.createdAt,
    updatedAt: now.toISOString(),
    model: { name: state.modelName, ...(session.modelPath ? { path: session.modelPath } : {}) },
    ...(state.system ? { system: state.system } : {}),
    sampling: state.sampling,
    messages,
  };
}
