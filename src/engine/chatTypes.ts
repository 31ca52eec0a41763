/** Types shared by the chat engine, the session store and the TUI. No node-llama-cpp types here. */
import type { SamplingOptions, StopReason } from "./types.js";

export type ChatRole = "system" | "user" | "assistant";

/** One turn as the model sees it. */
export interface ChatTurn {
  role: ChatRole;
  text: string;
}

/** The run sampling settings plus a reply length; an undefined seed means a fresh one for every reply. */
export interface ChatSampling extends SamplingOptions {
  maxTokens: number;
}

export interface ReplyStats {
  /** From send() to the first generated token (prompt evaluation included). */
  ttftMs: number | null;
  /** Decode speed between the first and the last token, counted as `lmrun run` counts it. */
  tokensPerSecond: number | null;
  promptTokens: number;
  generatedTokens: number;
  totalMs: number;
  stopReason: StopReason;
}

export interface ReplyResult {
  text: string;
  stats: ReplyStats;
}

export interface ContextUsage {
  /** Tokens held in the context now. */
  used: number;
  size: number;
  /** Tokens the whole conversation would take; above `size` the oldest turns no longer fit. */
  historyTokens: number;
}

export interface SendOptions {
  sampling: ChatSampling;
  signal?: AbortSignal | undefined;
  /** Called with each piece of text and the number of tokens it came from. */
  onText?: ((text: string) => void) | undefined;
  /** A thinking model's thoughts, apart from the reply's text. */
  onThought?: ((text: string) => void) | undefined;
  onTokens?: ((count: number) => void) | undefined;
}

/** What the TUI needs from a chat engine; the real one is engine/chatSession.ts, tests use a fake. */
export interface ChatEngine {
  readonly modelName: string;
  readonly contextSize: number;
  send(userText: string, options: SendOptions): Promise<ReplyResult>;
  /** Replaces the conversation (system turn included). */
  setHistory(turns: ChatTurn[]): void;
  getHistory(): ChatTurn[];
  reset(): void;
  setSystem(text: string | undefined): void;
  contextUsage(): ContextUsage;
  dispose(): Promise<void>;
}
