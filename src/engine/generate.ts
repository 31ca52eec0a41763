import type { ChatHistoryItem, LlamaGrammar, Token } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { chatWrapperFor } from "./chatWrapper.js";
import type { LoadedModel } from "./model.js";
import { StopTextFilter } from "./stopText.js";
import { setContextThreads } from "./threads.js";
import type { GenerateRequest, GenerationResult, StopReason } from "./types.js";

export interface GenerateHooks {
  onText?: (text: string) => void;
  signal?: AbortSignal;
}

type NativeStopReason = "eogToken" | "stopGenerationTrigger" | "functionCalls" | "maxTokens" | "abort" | "customStopTrigger";

function mapStopReason(reason: NativeStopReason): StopReason {
  switch (reason) {
    case "maxTokens":
      return "maxTokens";
    case "abort":
      return "abort";
    case "customStopTrigger":
      return "stop";
    default:
      return "eos";
  }
}

async function grammarFor(loaded: LoadedModel, schema: GenerateRequest["jsonSchema"]): Promise<LlamaGrammar | undefined> {
  if (schema === undefined) return undefined;
  if (schema === "json") return loaded.llama.getGrammarFor("json");
  try {
    // The schema arrives as user data; node-llama-cpp validates what it supports.
    return await loaded.llama.createGrammarForJsonSchema(schema as never);
  } catch (error) {
    throw new LmrunError(`the JSON schema cannot be turned into a grammar: ${(error as Error).message}`, {
      exitCode: 2,
      hint: "Use a simpler schema (objects, arrays, strings, numbers, enums)",
    });
  }
}

function buildHistory(request: GenerateRequest, userText: string): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  if (request.systemPrompt) history.push({ type: "system", text: request.systemPrompt });
  history.push({ type: "user", text: userText });
  history.push({ type: "model", response: [] });
  return history;
}

/**
 * One-shot generation on a loaded model. Text streams through onText as it is produced;
 * the result carries token counts, stop reason and timings measured around the native calls.
 */
export async function generate(loaded: LoadedModel, request: GenerateRequest, hooks: GenerateHooks = {}): Promise<GenerationResult> {
  const { LlamaChat, LlamaCompletion } = await import("node-llama-cpp");
  const contextSize = loaded.context.contextSize;
  const sequence = loaded.context.getSequence();
  try {
    const grammar = await grammarFor(loaded, request.jsonSchema);
    const useChat = request.chat;
    const chat = useChat ? new LlamaChat({ contextSequence: sequence, chatWrapper: (await chatWrapperFor(loaded.model, loaded.summary.path)).chatWrapper }) : undefined;

    // Count the prompt as the model will see it, and refuse (or cut) what does not fit.
    let userText = request.prompt;
    let promptTokenCount = countPromptTokens(loaded, chat, request, userText);
    let truncatedPromptTokens = 0;
    const room = contextSize - 1;
    if (promptTokenCount > room) {
      if (!request.truncate) {
        throw new LmrunError(
          `the prompt is ${promptTokenCount} tokens but the context holds ${contextSize} (${loaded.summary.requestedContextSize !== undefined ? `llama.cpp's smallest here, for -c ${loaded.summary.requestedContextSize}; ` : ""}the model was trained on ${loaded.summary.trainContextSize})`,
          { exitCode: 2, hint: "Raise --ctx, shorten the prompt, or pass --truncate to keep its end" },
        );
      }
      const textTokens = loaded.model.tokenize(userText, false);
      const overhead = promptTokenCount - textTokens.length;
      // Leave room for the reply (up to half the context): a prompt cut to fill the context would
      // make every generated token shift it.
      const reserve = request.maxTokens < 0 ? Math.floor(contextSize / 2) : Math.min(request.maxTokens, Math.floor(contextSize / 2));
      const keep = Math.max(0, room - reserve - overhead);
      truncatedPromptTokens = textTokens.length - keep;
      userText = loaded.model.detokenize(textTokens.slice(textTokens.length - keep));
      promptTokenCount = countPromptTokens(loaded, chat, request, userText);
    }

    // Prompt batches use the batch threads; the first sampled token switches to generation threads.
    setContextThreads(loaded.context, loaded.summary.batchThreads);
    const startedAt = performance.now();
    let firstTokenAt: number | undefined;
    let lastTokenAt: number | undefined;
    let generatedTokens = 0;
    const onToken = (tokens: Token[]) => {
      const now = performance.now();
      if (firstTokenAt === undefined) {
        firstTokenAt = now;
        setContextThreads(loaded.context, loaded.summary.threads);
      }
      lastTokenAt = now;
      generatedTokens += tokens.length;
    };
    const common = {
      onToken,
      ...(hooks.onText ? { onTextChunk: hooks.onText } : {}),
      ...(hooks.signal ? { signal: hooks.signal, stopOnAbortSignal: true } : {}),
      // -1 (llama.cpp's -n -1): no limit but the context (no endless generation through context shifts).
      maxTokens: request.maxTokens >= 0 ? request.maxTokens : Math.max(1, contextSize - promptTokenCount),
      temperature: request.sampling.temperature,
      topK: request.sampling.topK,
      topP: request.sampling.topP,
      minP: request.sampling.minP,
      ...(request.sampling.seed !== undefined ? { seed: request.sampling.seed } : {}),
      repeatPenalty: request.sampling.repeatPenalty === 1 ? (false as const) : { penalty: request.sampling.repeatPenalty },
      ...(request.stop.length > 0 ? { customStopTriggers: request.stop } : {}),
      ...(grammar ? { grammar } : {}),
    };

    let text: string;
    let nativeStop: NativeStopReason;
    if (chat) {
      const history = buildHistory(request, userText);
      const response = await chat.generateResponse(history, common);
      text = response.response;
      nativeStop = response.metadata.stopReason;
    } else if (request.stop.length > 0) {
      // Stop texts are matched here, on the streamed text (see stopText.ts), and end generation through an abort.
      const filter = new StopTextFilter(request.stop);
      const stopper = new AbortController();
      hooks.signal?.addEventListener("abort", () => stopper.abort(), { once: true });
      if (hooks.signal?.aborted) stopper.abort();
      const { customStopTriggers: _matchedHere, ...options } = common;
      const completion = new LlamaCompletion({ contextSequence: sequence });
      const response = await completion.generateCompletionWithMeta(userText, {
        ...options,
        signal: stopper.signal,
        stopOnAbortSignal: true,
        onTextChunk: (chunk: string) => {
          const shown = filter.push(chunk);
          if (shown.length > 0) hooks.onText?.(shown);
          if (filter.stopped) stopper.abort();
        },
      });
      if (!filter.stopped) {
        const rest = filter.flush();
        if (rest.length > 0) hooks.onText?.(rest);
      }
      text = filter.text;
      nativeStop = filter.stopped ? "customStopTrigger" : response.metadata.stopReason;
    } else {
      const completion = new LlamaCompletion({ contextSequence: sequence });
      const response = await completion.generateCompletionWithMeta(userText, common);
      text = response.response;
      nativeStop = response.metadata.stopReason;
    }
    const endedAt = performance.now();
    // The prompt as the model saw it; the token meter also counts what a context shift evaluates again.
    const promptTokens = promptTokenCount;
    const promptMs = firstTokenAt !== undefined ? firstTokenAt - startedAt : null;
    const generationMs = firstTokenAt !== undefined && lastTokenAt !== undefined ? lastTokenAt - firstTokenAt : null;
    return {
      text,
      promptTokens,
      generatedTokens,
      stopReason: mapStopReason(nativeStop),
      truncatedPromptTokens,
      timings: {
        ttftMs: promptMs,
        promptMs,
        generationMs,
        totalMs: endedAt - startedAt,
        promptTokensPerSecond: promptMs !== null && promptMs > 0 ? promptTokens / (promptMs / 1000) : null,
        // Decode speed between the first and the last token, as llama.cpp's eval rate counts it.
        generationTokensPerSecond:
          generationMs !== null && generationMs > 0 && generatedTokens > 1 ? (generatedTokens - 1) / (generationMs / 1000) : null,
      },
    };
  } finally {
    sequence.dispose();
  }
}

function countPromptTokens(
  loaded: LoadedModel,
  chat: InstanceType<typeof import("node-llama-cpp").LlamaChat> | undefined,
  request: GenerateRequest,
  userText: string,
): number {
  if (!chat) return loaded.model.tokenize(userText, false).length + (loaded.model.tokens.bos !== null ? 1 : 0);
  const { contextText } = chat.chatWrapper.generateContextState({ chatHistory: buildHistory(request, userText) });
  return contextText.tokenize(loaded.model.tokenizer).length;
}
