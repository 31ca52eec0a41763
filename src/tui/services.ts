import type { ChatEngine, ChatSampling } from "../engine/chatTypes.js";
import type { SavedMessage, Transcript } from "../chat/transcript.js";

/** Everything the chat UI needs from outside React; index.ts wires the real ones, tests pass fakes. */
export interface ChatServices {
  /** Resolves and loads another model; undefined when switching is not available. */
  switchModel?: ((ref: string) => Promise<ChatEngine>) | undefined;
  /** Persists the session (atomic, serialised); never throws. */
  saveSession(t: Transcript): void;
  history: string[];
  saveHistory(entries: string[]): void;
  readTextFile(file: string): Promise<string>;
  writeTextFile(file: string, content: string): Promise<void>;
  /** Opens $EDITOR on the text and returns the edited text (undefined: unchanged or failed). */
  openEditor?: ((text: string) => string | undefined) | undefined;
  /** Wipes the terminal before the transcript is printed again. */
  clearScreen(): void;
  /** New session id for /clear. */
  newSessionId(): string;
  now(): Date;
}

export interface ChatStartOptions {
  engine: ChatEngine;
  services: ChatServices;
  sampling: ChatSampling;
  system?: string | undefined;
  session: { id: string; createdAt: string; modelPath?: string | undefined };
  messages?: SavedMessage[] | undefined;
  /** A line shown above the conversation when the chat opens (e.g. which model was picked for you). */
  notice?: string | undefined;
  /** How often the streaming reply is redrawn. */
  flushMs?: number;
}
