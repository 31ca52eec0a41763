import type { ChatEngine, ChatSampling, ChatTurn, ContextUsage, ReplyResult, SendOptions } from "../../src/engine/chatTypes.js";
import type { ChatServices } from "../../src/tui/services.js";

/** A chat engine without a model: replies with scripted text, token by token, and honours abort. */
export class FakeEngine implements ChatEngine {
  readonly modelName: string;
  readonly contextSize = 1000;
  turns: ChatTurn[] = [];
  sent: { text: string; sampling: ChatSampling }[] = [];
  disposed = false;
  constructor(
    private readonly reply: (text: string) => string[],
    private readonly tokenDelayMs = 1,
    modelName = "fake-model",
  ) {
    this.modelName = modelName;
  }

  async send(userText: string, options: SendOptions): Promise<ReplyResult> {
    this.sent.push({ text: userText, sampling: { ...options.sampling } });
    const started = performance.now();
    let text = "";
    let tokens = 0;
    for (const piece of this.reply(userText)) {
      if (options.signal?.aborted) break;
      await new Promise((r) => setTimeout(r, this.tokenDelayMs));
      if (options.signal?.aborted) break;
      text += piece;
      tokens++;
      options.onTokens?.(1);
      options.onText?.(piece);
    }
    this.turns.push({ role: "user", text: userText }, { role: "assistant", text });
    return {
      text,
      stats: {
        ttftMs: 5,
        tokensPerSecond: 123.4,
        promptTokens: userText.length,
        generatedTokens: tokens,
        totalMs: performance.now() - started,
        stopReason: options.signal?.aborted ? "abort" : "eos",
      },
    };
  }
  setHistory(turns: ChatTurn[]): void {
    this.turns = turns.map((t) => ({ ...t }));
  }
  getHistory(): ChatTurn[] {
    return this.turns.map((t) => ({ ...t }));
  }
  reset(): void {
    this.turns = this.turns.filter((t) => t.role === "system");
  }
  setSystem(text: string | undefined): void {
    this.turns = [...(text ? [{ role: "system" as const, text }] : []), ...this.turns.filter((t) => t.role !== "system")];
  }
  contextUsage(): ContextUsage {
    const used = this.turns.reduce((n, t) => n + t.text.length, 0);
    return { used, size: this.contextSize, historyTokens: used };
  }
  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

export interface FakeServices extends ChatServices {
  saved: unknown[];
  files: Map<string, string>;
  savedHistory: string[][];
  clears: number;
}

export function fakeServices(overrides: Partial<ChatServices> = {}): FakeServices {
  const files = new Map<string, string>();
  const services: FakeServices = {
    saved: [],
    files,
    savedHistory: [],
    clears: 0,
    saveSession: (t) => services.saved.push(structuredClone(t)),
    history: [],
    saveHistory: (entries) => services.savedHistory.push([...entries]),
    readTextFile: async (file) => {
      const text = files.get(file);
      if (text === undefined) throw new Error(`ENOENT: ${file}`);
      return text;
    },
    writeTextFile: async (file, content) => {
      files.set(file, content);
    },
    clearScreen: () => {
      services.clears++;
    },
    newSessionId: () => "20260101-000000-new0",
    now: () => new Date("2026-01-01T00:00:00.000Z"),
    ...overrides,
  };
  return services;
}

export const sampling: ChatSampling = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, maxTokens: 64 };

export async function waitFor(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
