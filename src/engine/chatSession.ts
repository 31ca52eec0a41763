import type { ChatHistoryItem, LlamaChatSession, Token } from "node-llama-cpp";
import type { ChatEngine, ChatSampling, ChatTurn, ContextUsage, ReplyResult, SendOptions } from "./chatTypes.js";
import type { LoadedModel } from "./model.js";
import { setContextThreads } from "./threads.js";
import { ThoughtSplitter } from "./thoughts.js";
import { chatWrapperOf, sampledTokens } from "./generate.js";
import { generationEnded, generationStarted } from "./nativeMemory.js";
import { vocabularySize } from "./vocabulary.js";
import { systemTurnsOf, withSystemTurn } from "../chat/turns.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";

function toHistoryItems(turns: ChatTurn[]): ChatHistoryItem[] {
  return turns.map((turn): ChatHistoryItem => {
    if (turn.role === "system") return { type: "system", text: turn.text };
    if (turn.role === "user") return { type: "user", text: turn.text };
    return { type: "model", response: [turn.text] };
  });
}

function fromHistoryItems(items: ChatHistoryItem[]): ChatTurn[] {
  return items.map((item): ChatTurn => {
    if (item.type === "system") return { role: "system", text: typeof item.text === "string" ? item.text : JSON.stringify(item.text) };
    if (item.type === "user") return { role: "user", text: item.text };
    return { role: "assistant", text: item.response.filter((part): part is string => typeof part === "string").join("") };
  });
}

type NativeStop = "eogToken" | "stopGenerationTrigger" | "functionCalls" | "maxTokens" | "abort" | "customStopTrigger";
function mapStop(reason: NativeStop): ReplyResult["stats"]["stopReason"] {
  if (reason === "maxTokens" || reason === "abort") return reason;
  if (reason === "customStopTrigger") return "stop";
  return "eos";
}

/**
 * A multi-turn chat on one loaded model, on top of node-llama-cpp's LlamaChatSession.
 * The conversation lives here as plain turns; when it outgrows the context, LlamaChatSession
 * drops the oldest turns from what the model sees (its default context-shift strategy)
 * while the turns themselves are kept.
 */
export class LlamaChatEngine implements ChatEngine {
  readonly modelName: string;
  private turns: ChatTurn[] = [];

  private constructor(
    private readonly loaded: LoadedModel,
    private readonly session: LlamaChatSession,
    modelName: string,
    /** false (--no-think): a thinking model answers without thinking. */
    private readonly think: boolean | undefined,
  ) {
    this.modelName = modelName;
  }

  static async create(loaded: LoadedModel, options: { modelName: string; systemPrompt?: string | undefined; think?: boolean | undefined }): Promise<LlamaChatEngine> {
    const { LlamaChatSession } = await loadNodeLlamaCpp();
    const chatWrapper = await chatWrapperOf(loaded, options.think);
    const session = new LlamaChatSession({ contextSequence: loaded.context.getSequence(), autoDisposeSequence: true, chatWrapper });
    const engine = new LlamaChatEngine(loaded, session, options.modelName, options.think);
    engine.setHistory(options.systemPrompt ? [{ role: "system", text: options.systemPrompt }] : []);
    return engine;
  }

  get contextSize(): number {
    return this.loaded.context.contextSize;
  }

  getHistory(): ChatTurn[] {
    return this.turns.map((t) => ({ ...t }));
  }

  setHistory(turns: ChatTurn[]): void {
    this.turns = turns.map((t) => ({ ...t }));
    this.session.setChatHistory(toHistoryItems(this.turns));
  }

  reset(): void {
    this.setHistory(systemTurnsOf(this.turns));
  }

  setSystem(text: string | undefined): void {
    this.setHistory(withSystemTurn(this.turns, text));
  }

  async send(userText: string, options: SendOptions): Promise<ReplyResult> {
    const sequence = this.session.sequence;
    const meterBefore = sequence.tokenMeter.getState();
    const startedAt = performance.now();
    let firstTokenAt: number | undefined;
    let lastTokenAt: number | undefined;
    let generatedTokens = 0;
    // Same thread split as `lmrun run`: batch threads for the prompt, generation threads from the first token.
    setContextThreads(this.loaded.context, this.loaded.summary.batchThreads);
    const onToken = (tokens: Token[]) => {
      const now = performance.now();
      if (firstTokenAt === undefined) {
        firstTokenAt = now;
        setContextThreads(this.loaded.context, this.loaded.summary.threads);
      }
      lastTokenAt = now;
      generatedTokens += tokens.length;
      options.onTokens?.(tokens.length);
    };
    // A thinking model's thoughts go to onThought; node-llama-cpp's onToken does not see their tokens.
    const thoughts = new ThoughtSplitter(options, (count) => {
      onToken([]);
      options.onTokens?.(count);
    });
    let response: { responseText: string; stopReason: NativeStop };
    generationStarted();
    try {
      response = await this.session.promptWithMeta(userText, {
        ...samplingOptions(options.sampling),
        onToken,
        ...thoughts.options(this.think, this.session.chatWrapper.settings.segments?.thought !== undefined),
        ...(options.signal ? { signal: options.signal, stopOnAbortSignal: true } : {}),
      });
      // The session's history now holds the new user turn and the (possibly partial) reply.
      this.turns = fromHistoryItems(this.session.getChatHistory());
    } catch (error) {
      if (options.signal?.aborted !== true) throw error;
      // Stopped before the first token: keep the question, with an empty reply.
      this.setHistory([...this.turns, { role: "user", text: userText }, { role: "assistant", text: "" }]);
      response = { responseText: "", stopReason: "abort" };
    } finally {
      generationEnded(vocabularySize(this.loaded.model, 32000));
    }
    const endedAt = performance.now();
    const meterAfter = sequence.tokenMeter.getState();
    ({ generatedTokens, lastTokenAt } = sampledTokens(generatedTokens, meterAfter.usedOutputTokens - meterBefore.usedOutputTokens, firstTokenAt, lastTokenAt, endedAt));
    const generationMs = firstTokenAt !== undefined && lastTokenAt !== undefined ? lastTokenAt - firstTokenAt : null;
    return {
      text: thoughts.answer(response.responseText),
      stats: {
        ttftMs: firstTokenAt !== undefined ? firstTokenAt - startedAt : null,
        tokensPerSecond: generationMs !== null && generationMs > 0 && generatedTokens > 1 ? (generatedTokens - 1) / (generationMs / 1000) : null,
        // The meter counts the prompt's last token as an output (it is decoded for its logits), and every
        // sampled token but the last: take it back from there, so the count matches `lmrun run`'s.
        promptTokens: Math.max(
          0,
          meterAfter.usedInputTokens - meterBefore.usedInputTokens + Math.max(0, meterAfter.usedOutputTokens - meterBefore.usedOutputTokens - Math.max(0, generatedTokens - 1)),
        ),
        generatedTokens,
        totalMs: endedAt - startedAt,
        stopReason: mapStop(response.stopReason),
      },
    };
  }

  contextUsage(): ContextUsage {
    const size = this.contextSize;
    const used = Math.min(size, this.session.sequence.nextTokenIndex);
    let historyTokens = used;
    try {
      const { contextText } = this.session.chatWrapper.generateContextState({ chatHistory: toHistoryItems(this.turns) });
      historyTokens = contextText.tokenize(this.loaded.model.tokenizer).length;
    } catch {
      // A template that cannot render this history: fall back to what the context holds.
    }
    return { used, size, historyTokens };
  }

  async dispose(): Promise<void> {
    this.session.dispose({ disposeSequence: true });
    await this.loaded.dispose();
  }
}

function samplingOptions(s: ChatSampling) {
  return {
    // -1 (llama.cpp's -n -1): no limit.
    ...(s.maxTokens >= 0 ? { maxTokens: s.maxTokens } : {}),
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    minP: s.minP,
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
    repeatPenalty: s.repeatPenalty === 1 ? (false as const) : { penalty: s.repeatPenalty },
  };
}
