import type { ChatEngine, ChatTurn, ContextUsage, ReplyResult, SendOptions } from "../engine/chatTypes.js";
import type { ServerClient } from "./http.js";
import { wireOptions } from "./run.js";
import type { ChatBody, PsEntry, StreamChunk } from "./wire.js";
import { systemTurnsOf, withSystemTurn } from "../chat/turns.js";

/**
 * The chat TUI's engine when a server holds the model: the same ChatEngine the in-process
 * LlamaChatEngine is, so the TUI does not know the difference. The conversation lives here and is
 * sent whole with every turn (POST /api/chat), as ollama's clients do; the server's prefix cache
 * evaluates only the new turn.
 */
export class RemoteChatEngine implements ChatEngine {
  private turns: ChatTurn[] = [];
  private held = 0;

  private constructor(
    private readonly client: ServerClient,
    /** The name the server serves the model under. */
    private readonly model: string,
    readonly modelName: string,
    public contextSize: number,
    /** The file the server loaded (recorded in the saved session, so --resume finds the model again). */
    readonly modelPath: string,
    private readonly think: boolean | undefined,
  ) {}

  /**
   * Loads the model on the server (ollama's load request: no prompt), so the chat opens warm and a
   * model the server does not serve fails here, before the screen opens.
   */
  static async create(
    client: ServerClient,
    model: string,
    options: { systemPrompt?: string | undefined; signal?: AbortSignal | undefined; think?: boolean | undefined },
  ): Promise<RemoteChatEngine> {
    await client.json("POST", "/api/generate", { model, stream: false }, options.signal);
    const ps = await client.json<{ models?: PsEntry[] }>("GET", "/api/ps", undefined, options.signal);
    const entry = (ps.models ?? []).find((m) => m.name === model || m.model === model);
    const lmrun = (entry?.lmrun ?? {}) as { path?: unknown; name?: unknown };
    const engine = new RemoteChatEngine(
      client,
      model,
      typeof lmrun.name === "string" ? lmrun.name : model,
      entry?.context_length ?? 0,
      typeof lmrun.path === "string" ? lmrun.path : model,
      options.think,
    );
    engine.setHistory(options.systemPrompt ? [{ role: "system", text: options.systemPrompt }] : []);
    return engine;
  }

  getHistory(): ChatTurn[] {
    return this.turns.map((t) => ({ ...t }));
  }

  setHistory(turns: ChatTurn[]): void {
    this.turns = turns.map((t) => ({ ...t }));
    if (!this.turns.some((t) => t.role !== "system")) this.held = 0;
  }

  reset(): void {
    this.setHistory(systemTurnsOf(this.turns));
  }

  setSystem(text: string | undefined): void {
    this.setHistory(withSystemTurn(this.turns, text));
  }

  async send(userText: string, options: SendOptions): Promise<ReplyResult> {
    const messages = [...this.turns, { role: "user" as const, text: userText }].map((t) => ({ role: t.role, content: t.text }));
    const body: ChatBody = { model: this.model, messages, stream: true, options: wireOptions(options.sampling, []), ...(this.think !== undefined ? { think: this.think } : {}) };
    const startedAt = performance.now();
    let firstTextAt: number | undefined;
    let text = "";
    let final: StreamChunk | undefined;
    try {
      final = await this.client.stream(
        "/api/chat",
        body,
        (chunk) => {
          const thought = chunk.message?.thinking ?? "";
          if (thought.length > 0) {
            options.onThought?.(thought);
            options.onTokens?.(1);
          }
          const piece = chunk.message?.content ?? "";
          if (piece.length === 0) return;
          firstTextAt ??= performance.now();
          text += piece;
          options.onText?.(piece);
          options.onTokens?.(1);
        },
        options.signal,
      );
    } catch (error) {
      if (options.signal?.aborted !== true) throw error;
      // Stopped by the user: keep the question and what came of the reply, as the in-process engine does.
    }
    this.turns = [...this.turns, { role: "user", text: userText }, { role: "assistant", text }];
    const ext = final?.lmrun;
    const promptTokens = ext?.promptTokens ?? final?.prompt_eval_count ?? 0;
    const generatedTokens = ext?.generatedTokens ?? final?.eval_count ?? 0;
    if (ext !== undefined && ext.load.contextSize > 0) this.contextSize = ext.load.contextSize;
    if (final !== undefined) this.held = promptTokens + generatedTokens;
    return {
      text,
      stats: {
        // As the user waits for it: from send() to the first text, the trip to the server included.
        ttftMs: firstTextAt !== undefined ? firstTextAt - startedAt : null,
        tokensPerSecond: ext?.generationTokensPerSecond ?? null,
        promptTokens,
        generatedTokens,
        totalMs: performance.now() - startedAt,
        stopReason: final === undefined ? "abort" : (ext?.stopReason ?? (final.done_reason === "length" ? "maxTokens" : "eos")),
      },
    };
  }

  /** What the server's context held after the last reply (it counts tokens; this side cannot). */
  contextUsage(): ContextUsage {
    return { used: Math.min(this.held, this.contextSize || this.held), size: this.contextSize, historyTokens: this.held };
  }

  async dispose(): Promise<void> {
    // The model stays loaded on the server for its other clients (its keep-alive unloads it).
    this.client.close();
  }
}
