import { spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { render } from "ink";
import React from "react";
import { writeFileAtomic } from "../fs/atomicWrite.js";
import { InputHistoryFile } from "../chat/inputHistory.js";
import { newSessionId, type SessionStore } from "../chat/sessionStore.js";
import type { Transcript } from "../chat/transcript.js";
import type { ChatEngine } from "../engine/chatTypes.js";
import { App } from "./App.js";
import type { ChatServices, ChatStartOptions } from "./services.js";

type Tty = NodeJS.WriteStream;

const ALT_SCREEN_ON = "\x1b[?1049h\x1b[H";
const ALT_SCREEN_OFF = "\x1b[?1049l";
const PASTE_ON = "\x1b[?2004h";
const PASTE_OFF = "\x1b[?2004l";
const SHOW_CURSOR = "\x1b[?25h";
const CLEAR_SCREEN = "\x1b[2J\x1b[3J\x1b[H";

export interface StartChatOptions extends Omit<ChatStartOptions, "services"> {
  stdin: NodeJS.ReadStream;
  stdout: Tty;
  stderr: Tty;
  env: NodeJS.ProcessEnv;
  color: boolean;
  store: SessionStore;
  historyFile: string;
  switchModel?: (ref: string) => Promise<ChatEngine>;
  /** Aborted from outside (SIGTERM, SIGINT sent by kill): leave the chat. */
  signal: AbortSignal;
}

export interface ChatOutcome {
  sessionId: string;
  saved: boolean;
  /** A session or history write that failed, reported after the screen is restored. */
  saveError: string | undefined;
}

/** Runs the full-screen chat until the user leaves; the terminal is restored on every way out. */
export async function startChat(options: StartChatOptions): Promise<ChatOutcome> {
  const { stdout, stdin } = options;
  let saveChain: Promise<void> = Promise.resolve();
  let saveError: string | undefined;
  let savedId: string | undefined;
  const queue = (write: () => Promise<void>) => {
    saveChain = saveChain.then(write).catch((error: unknown) => {
      saveError = (error as Error).message;
    });
  };
  const historyFile = new InputHistoryFile(options.historyFile);
  const noHistory = options.env.LMRUN_NOHISTORY !== undefined && options.env.LMRUN_NOHISTORY !== "";

  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    stdout.write(PASTE_OFF + SHOW_CURSOR + ALT_SCREEN_OFF);
    if (stdin.isTTY) stdin.setRawMode?.(false);
  };
  const onProcessExit = () => restore();
  process.on("exit", onProcessExit);

  // The engine in use at the end is disposed here; useChat disposes the ones it switches away from.
  let currentEngine = options.engine;
  const switchModel = options.switchModel;
  const services: ChatServices = {
    ...(switchModel
      ? {
          switchModel: async (ref: string) => {
            const next = await switchModel(ref);
            currentEngine = next;
            return next;
          },
        }
      : {}),
    saveSession: (t: Transcript) => {
      savedId = t.id;
      queue(() => options.store.save(t));
    },
    history: noHistory ? [] : await historyFile.load(),
    saveHistory: (entries) => {
      if (!noHistory) queue(() => historyFile.save(entries));
    },
    readTextFile: (file) => fsp.readFile(file, "utf8"),
    writeTextFile: (file, content) => writeFileAtomic(file, content),
    openEditor: (text) => openEditor(text, options),
    clearScreen: () => stdout.write(CLEAR_SCREEN),
    newSessionId: () => newSessionId(),
    now: () => new Date(),
  };

  stdout.write(ALT_SCREEN_ON + PASTE_ON);
  // Raw mode before the first frame: keys typed once the screen shows must not reach the
  // terminal's line editing (echo, Enter as "\n") in the moment before Ink's input hook runs.
  if (stdin.isTTY) stdin.setRawMode?.(true);
  const instance = render(React.createElement(App, { ...options, services }), {
    stdin,
    stdout,
    stderr: options.stderr,
    exitOnCtrlC: false,
    patchConsole: true,
    maxFps: 30,
    // The keymap reads classic terminal bytes; the kitty protocol would re-encode Ctrl+C, Esc and Alt keys.
    kittyKeyboard: { mode: "disabled" },
  });
  const onAbort = () => instance.unmount();
  options.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await instance.waitUntilExit();
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    instance.unmount();
    restore();
    process.off("exit", onProcessExit);
    await saveChain;
    await currentEngine.dispose().catch(() => {});
  }
  return { sessionId: savedId ?? options.session.id, saved: savedId !== undefined, saveError };
}

/** Ctrl+G: hand the terminal to $VISUAL/$EDITOR on a temp file holding the draft, then take it back. */
function openEditor(text: string, options: StartChatOptions): string | undefined {
  const editor = options.env.VISUAL || options.env.EDITOR || (process.platform === "win32" ? "notepad" : "vi");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-draft-"));
  const file = path.join(dir, "message.md");
  try {
    fs.writeFileSync(file, text);
    if (options.stdin.isTTY) options.stdin.setRawMode?.(false);
    options.stdout.write(PASTE_OFF + SHOW_CURSOR + ALT_SCREEN_OFF);
    const result = spawnSync(`${editor} "${file}"`, { shell: true, stdio: "inherit" });
    options.stdout.write(ALT_SCREEN_ON + PASTE_ON + CLEAR_SCREEN);
    if (options.stdin.isTTY) options.stdin.setRawMode?.(true);
    if (result.status !== 0) return undefined;
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
