import type { ChatHistoryItem, ChatModelFunctions, ChatModelResponse, ChatWrapper, LlamaContextSequence, LlamaGrammar, LlamaModel, Token } from "node-llama-cpp";
import { LmrunError } from "../errors.js";
import { chatWrapperFor, chatWrapperForThinking, type ResolvedChatWrapper } from "./chatWrapper.js";
import type { LoadedModel } from "./model.js";
import { ContinuationText } from "./continuationText.js";
import { StopTextFilter } from "./stopText.js";
import { setContextThreads } from "./threads.js";
import { holdThreadCount } from "./threadpool.js";
import { dropOldestMessages, linkToolResults } from "./conversation.js";
import { forcedCallSchema, parseForcedCalls } from "./toolChoice.js";
import { TaggedThoughtSplitter, ThoughtSplitter } from "./thoughts.js";
import { generationEnded, generationStarted } from "./nativeMemory.js";
import { vocabularySize } from "./vocabulary.js";
import { checkTokenIds, promptTextOf } from "./tokenizer.js";
import type { ChatMessage, GenerateRequest, GenerationResult, StopReason, TokenLogprob, ToolCall } from "./types.js";
import { LogprobRecorder, recordProbabilities } from "./logprobs.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";

/** A prompt longer than the context (and not to be truncated): the server's 400 "context_length_exceeded". */
export class PromptTooLongError extends LmrunError {
  constructor(
    message: string,
    /** What was too long: a raw prompt, a conversation, or a text to embed. */
    readonly field: "prompt" | "messages" | "input",
    /** Truncation was asked for and could not make it fit (a conversation's last message alone is too long). */
    readonly evenTruncated = false,
  ) {
    super(message, { exitCode: 2, hint: "Raise --ctx, shorten the prompt, or pass --truncate to keep its end" });
  }
}

export interface GenerateHooks {
  /** The answer's text as it comes; with request.logprobs, the tokens it is made of. */
  onText?: (text: string, logprobs?: TokenLogprob[]) => void;
  /** A thinking model's thoughts as they come (chat only); onText has the answer alone. */
  onThought?: (text: string) => void;
  /**
   * A forced tool call's JSON as it is generated (it is not the answer's text): a named function's
   * arguments, or for `required` the `{name, arguments}` calls (ForcedCallStream reads them).
   */
  onCallArguments?: (text: string) => void;
  signal?: AbortSignal;
  /**
   * Thread switching between prompt and generation. Default: the context's threads follow this
   * request (batch threads for the prompt, -t from the first token); the slot scheduler, whose
   * context serves several requests at once, decides for all of them instead.
   */
  threads?: { prompt(): void; generating(): void };
  /** The prompt's tokens if the caller has them already (promptTokensOf: the slot scheduler's choice). */
  promptTokens?: readonly Token[];
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

async function grammarFor(loaded: LoadedModel, schema: object | "json" | undefined): Promise<LlamaGrammar | undefined> {
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

function buildHistory(chatWrapper: ChatWrapper, request: GenerateRequest, userText: string): ChatHistoryItem[] {
  // Thoughts sent back go in where the wrapper renders thoughts; another would show them as answer text.
  if (request.messages !== undefined) return historyOfMessages(request.messages, { thoughts: chatWrapper.settings.segments?.thought !== undefined });
  const history: ChatHistoryItem[] = [];
  if (request.systemPrompt) history.push({ type: "system", text: request.systemPrompt });
  history.push({ type: "user", text: userText });
  history.push({ type: "model", response: [] });
  return history;
}

/**
 * What a chat request shows the model: its history, and the functions node-llama-cpp's function
 * calling may let it call. A forced tool call (toolChoice.ts) documents the tools in the history as
 * the chat wrapper would and leaves the call to a grammar instead.
 */
function chatPlan(
  chatWrapper: ChatWrapper,
  request: GenerateRequest,
  userText: string,
): { history: ChatHistoryItem[]; functions?: ChatModelFunctions; forced: boolean } {
  const history = buildHistory(chatWrapper, request, userText);
  if (request.tools === undefined || request.tools.length === 0) return { history, forced: false };
  const functions = functionsOf(request.tools);
  if (forcedCallSchema(request.tools, request.toolChoice) === undefined) return { history, functions, forced: false };
  return { history: [...chatWrapper.addAvailableFunctionsSystemMessageToHistory(history, functions, { documentParams: true })], forced: true };
}

/**
 * A conversation as node-llama-cpp's chat history: an assistant turn's tool calls become function
 * call items carrying the results of the tool messages that answer them, and the history ends with
 * an empty model turn, the one to generate.
 */
export function historyOfMessages(messages: ChatMessage[], options: { thoughts: boolean } = { thoughts: true }): ChatHistoryItem[] {
  const links = linkToolResults(messages);
  const history: ChatHistoryItem[] = [];
  // A tool loop is one model turn, as node-llama-cpp's own function-calling loop keeps it: an assistant
  // message right after the tool results goes on with the turn that called the tools (its chat wrapper
  // renders the results and opens the model's next part; a new turn would add an empty assistant turn).
  const continuesTurn = (index: number) => index > 0 && messages[index - 1]!.role === "tool" && history.at(-1)?.type === "model";
  for (const [index, m] of messages.entries()) {
    if (m.role === "system") history.push({ type: "system", text: m.text });
    else if (m.role === "user") history.push({ type: "user", text: m.text });
    else if (m.role === "assistant") {
      const response: ChatModelResponse["response"] = [];
      if (m.thinking && options.thoughts) response.push({ type: "segment", segmentType: "thought", text: m.thinking, ended: true });
      if (m.text.length > 0) response.push(m.text);
      for (const [callIndex, call] of (m.toolCalls ?? []).entries()) {
        response.push({
          type: "functionCall",
          name: call.name,
          params: call.arguments,
          result: links.resultOf(index, callIndex) ?? "",
          // A later round's calls are their own chunk, not more parallel calls of the round before.
          ...(callIndex === 0 && continuesTurn(index) ? { startsNewChunk: true } : {}),
        });
      }
      if (continuesTurn(index)) (history.at(-1) as ChatModelResponse).response.push(...response);
      else history.push({ type: "model", response });
    }
  }
  // After tool results the model goes on with that turn (and its thoughts stay its last ones).
  if (!continuesTurn(messages.length)) history.push({ type: "model", response: [] });
  return history;
}

/**
 * The generated tokens as llama-server's completion_tokens and ollama's eval_count count them: every
 * sampled token, the end-of-generation token included. node-llama-cpp's onToken sees the answer's text
 * tokens only (not that token, a thinking model's thoughts, or a stop text held back); its token meter
 * counts each sampled token once as an output (the prompt's last token stands for the final one, which is
 * never decoded). Tokens onToken did not see were sampled by the end: their time runs to it.
 */
export function sampledTokens(
  counted: number,
  meterOutputs: number,
  firstTokenAt: number | undefined,
  lastTokenAt: number | undefined,
  endedAt: number,
): { generatedTokens: number; lastTokenAt: number | undefined } {
  if (meterOutputs <= counted) return { generatedTokens: counted, lastTokenAt };
  return { generatedTokens: meterOutputs, lastTokenAt: firstTokenAt !== undefined ? endedAt : lastTokenAt };
}

/**
 * One-shot generation on a loaded model. Text streams through onText as it is produced;
 * the result carries token counts, stop reason and timings measured around the native calls.
 */
export async function generate(loaded: LoadedModel, request: GenerateRequest, hooks: GenerateHooks = {}): Promise<GenerationResult> {
  const sequence = loaded.context.getSequence();
  try {
    return await generateOnSequence(loaded, sequence, request, hooks);
  } finally {
    sequence.dispose();
  }
}

/**
 * generate() on a sequence the caller owns and keeps: what the sequence already holds from an
 * earlier request is reused where the new prompt starts with it (node-llama-cpp compares the tokens).
 */
export async function generateOnSequence(
  loaded: LoadedModel,
  sequence: LlamaContextSequence,
  request: GenerateRequest,
  hooks: GenerateHooks = {},
): Promise<GenerationResult> {
  // Greedy answers repeat exactly only with one thread count throughout (see holdThreadCount).
  const releaseThreadCount = request.sampling.temperature === 0 ? holdThreadCount() : undefined;
  const recorder = request.logprobs !== undefined ? new LogprobRecorder(loaded.model, request.logprobs.top) : undefined;
  const stopRecording = recorder !== undefined ? recordProbabilities(sequence, recorder) : undefined;
  generationStarted();
  try {
    if (recorder === undefined) return await generateWithin(loaded, sequence, request, hooks);
    const result = await generateWithin(loaded, sequence, request, withLogprobs(hooks, recorder));
    if (request.logprobs?.endToken && result.stopReason === "eos") {
      const end = recorder.endToken((token) => loaded.model.isEogToken(token));
      if (end !== undefined) hooks.onText?.("", [end]);
    }
    return { ...result, logprobs: recorder.answerTokens };
  } finally {
    stopRecording?.();
    releaseThreadCount?.();
    generationEnded(vocabularySize(loaded.model, 32000));
  }
}

/** Hooks that find each shown text's tokens (the text is shown whether or not the caller streams it). */
function withLogprobs(hooks: GenerateHooks, recorder: LogprobRecorder): GenerateHooks & { discardText(): void } {
  const { onText, onThought } = hooks;
  return {
    ...hooks,
    onText: (text) => {
      const tokens = recorder.answer(text);
      onText?.(text, tokens);
    },
    onThought: (text) => {
      recorder.thought(text);
      onThought?.(text);
    },
    discardText: () => recorder.discardPending(),
  };
}

async function generateWithin(
  loaded: LoadedModel,
  sequence: LlamaContextSequence,
  request: GenerateRequest,
  hooks: GenerateHooks & { discardText?(): void },
): Promise<GenerationResult> {
  const { LlamaChat, LlamaCompletion } = await loadNodeLlamaCpp();
  const contextSize = sequence.contextSize;
  const threads = hooks.threads ?? {
    prompt: () => setContextThreads(loaded.context, loaded.summary.batchThreads),
    generating: () => setContextThreads(loaded.context, loaded.summary.threads),
  };
  // A continued exchange (ollama's context) is one token list: this turn is rendered into it, then completed.
  const continued = request.priorTokens !== undefined;
  const useChat = request.chat && !continued;
  const chat = useChat
    ? new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false, chatWrapper: await chatWrapperOf(loaded, request.think) })
    : undefined;
  const forcedSchema = chat ? forcedCallSchema(request.tools ?? [], request.toolChoice) : undefined;
  const grammar = await grammarFor(loaded, forcedSchema ?? request.jsonSchema);

  // Count the prompt as the model will see it, and refuse (or cut) what does not fit.
  let userText = request.prompt;
  let messages = request.messages;
  let promptTokenList =
    hooks.promptTokens !== undefined ? [...hooks.promptTokens] : continued ? await continuedPromptTokens(loaded, request) : promptTokensFor(loaded, chat, request, userText);
  let promptTokenCount = promptTokenList.length;
  let truncatedPromptTokens = 0;
  const room = contextSize - 1;
  if (promptTokenCount > room) {
    const tooLong = () =>
      new PromptTooLongError(
        `the prompt is ${promptTokenCount} tokens but the context holds ${contextSize} (${loaded.summary.requestedContextSize !== undefined ? `llama.cpp's smallest here, for -c ${loaded.summary.requestedContextSize}; ` : ""}the model was trained on ${loaded.summary.trainContextSize})`,
        request.messages !== undefined ? "messages" : "prompt",
        request.truncate,
      );
    // A prompt given as token ids is evaluated as given or not at all.
    if (!request.truncate || request.promptTokenIds !== undefined) throw tooLong();
    // Leave room for the reply (up to half the context): a prompt cut to fill the context would
    // leave the reply a token or two.
    const reserve = request.maxTokens < 0 ? Math.floor(contextSize / 2) : Math.min(request.maxTokens, Math.floor(contextSize / 2));
    const originalCount = promptTokenCount;
    if (continued) {
      // A continued exchange loses its oldest earlier tokens (its beginning token stays); this turn is kept whole.
      const head = completionBos(loaded) !== undefined ? 1 : 0;
      const drop = Math.min(withoutBos(loaded, (request.priorTokens ?? []) as Token[]).length, promptTokenCount - (room - reserve));
      if (promptTokenCount - drop > room) throw tooLong();
      promptTokenList = [...promptTokenList.slice(0, head), ...promptTokenList.slice(head + drop)];
    } else if (messages !== undefined) {
      // A conversation loses its oldest turns (system messages and the last message stay), as ollama does.
      const fitsIn = (limit: number) => (candidate: ChatMessage[]) => promptTokensFor(loaded, chat, { ...request, messages: candidate }, userText).length <= limit;
      // A last message too long to leave the reply its share still goes, with less room to answer in.
      const kept = dropOldestMessages(messages, fitsIn(room - reserve)) ?? dropOldestMessages(messages, fitsIn(room - 1));
      if (kept === undefined) throw tooLong();
      messages = kept;
      promptTokenList = promptTokensFor(loaded, chat, { ...request, messages }, userText);
    } else {
      // A raw prompt's special tokens are tokens (see completionPromptTokens); a chat message's and an infill's are text.
      const special = chat === undefined && request.suffix === undefined;
      const textTokens = loaded.model.tokenize(userText, special);
      const overhead = promptTokenCount - textTokens.length;
      const keep = Math.max(0, room - reserve - overhead);
      userText = loaded.model.detokenize(textTokens.slice(textTokens.length - keep), special);
      promptTokenList = promptTokensFor(loaded, chat, request, userText);
    }
    promptTokenCount = promptTokenList.length;
    if (promptTokenCount > room) throw tooLong();
    truncatedPromptTokens = originalCount - promptTokenCount;
  }

  // A plain completion's thoughts, split by their tags (ollama's raw mode and continued exchanges).
  const tagged = chat === undefined && request.thoughtsInText && request.think !== false ? await taggedThoughts(loaded, request, promptTokenList, hooks) : undefined;
  const shown = tagged !== undefined ? { onText: (text: string) => tagged.push(text) } : hooks;

  // Prompt batches use the batch threads; the first sampled token switches to generation threads.
  threads.prompt();
  const startedAt = performance.now();
  let firstTokenAt: number | undefined;
  let lastTokenAt: number | undefined;
  let generatedTokens = 0;
  const onToken = (tokens: Token[]) => {
    const now = performance.now();
    if (firstTokenAt === undefined) {
      firstTokenAt = now;
      threads.generating();
    }
    lastTokenAt = now;
    generatedTokens += tokens.length;
  };
  const common = {
    onToken,
    ...(hooks.onText ? { onTextChunk: hooks.onText } : {}),
    ...(hooks.signal ? { signal: hooks.signal, stopOnAbortSignal: true } : {}),
    // Generation ends where the context does, as llama.cpp's tools do by default (no context shift);
    // -1 (llama.cpp's -n -1): no limit but that.
    maxTokens: Math.max(1, request.maxTokens >= 0 ? Math.min(request.maxTokens, contextSize - promptTokenCount) : contextSize - promptTokenCount),
    temperature: request.sampling.temperature,
    topK: request.sampling.topK,
    topP: request.sampling.topP,
    minP: request.sampling.minP,
    ...(request.sampling.seed !== undefined ? { seed: request.sampling.seed } : {}),
    repeatPenalty: repeatPenaltyOf(request.sampling),
    ...(request.stop.length > 0 ? { customStopTriggers: request.stop } : {}),
    ...(grammar ? { grammar } : {}),
  };

  let text: string;
  let nativeStop: NativeStopReason;
  let stopText: string | undefined;
  let toolCalls: ToolCall[] | undefined;
  // Chat and completion objects are per request; disposing them leaves the sequence (and its cache) to the caller.
  const completion = chat ? undefined : new LlamaCompletion({ contextSequence: sequence });
  // A raw prompt goes in as llama.cpp's tokens (see completionPromptTokens), the answer comes out as its continuation.
  const rawPromptTokens = chat ? [] : promptTokenList;
  const inputTokens = rawPromptTokens.slice(completionBos(loaded) !== undefined ? 1 : 0);
  const continuation = new ContinuationText((tokens, special, last) => loaded.model.detokenize(tokens, special, last), rawPromptTokens);
  // A plain completion, or a fill-in-the-middle one: node-llama-cpp lays that prompt out (infillParts counts it
  // the same way); a shift size of 1 keeps it from cutting the prefix to leave room for a shift (the prompt was
  // fitted above).
  // Other files' text before it (input_extra) is a layout node-llama-cpp's infill has not: that prompt goes in
  // as the tokens infillParts laid out.
  const infill = !chat && request.suffix !== undefined ? infillParts(loaded, userText, request) : undefined;
  const complete = (options: Parameters<InstanceType<typeof LlamaCompletion>["generateCompletionWithMeta"]>[1] & {}) =>
    infill !== undefined && infill.extraTokens.length === 0
      ? completion!.generateInfillCompletionWithMeta(infill.prefixTokens, infill.suffixTokens, { ...options, contextShiftSize: 1 })
      : completion!.generateCompletionWithMeta(inputTokens, infill !== undefined ? { ...options, contextShiftSize: 1 } : options);
  const completionHooks = {
    onToken: (tokens: Token[]) => {
      continuation.tokens(tokens);
      onToken(tokens);
    },
    onTextChunk: (chunk: string) => {
      const text = continuation.chunk(chunk); // also when nobody streams: the whole text needs its prefix
      shown.onText?.(text);
    },
  };
  // Thought tokens reach neither onToken nor onTextChunk: the segments mark them, the token meter counts them.
  const thoughts = new ThoughtSplitter(hooks, () => onToken([]));
  let outputTokensBefore = sequence.tokenMeter.getState().usedOutputTokens;
  const chatCommon = { ...common, ...thoughts.options(request.think, chat?.chatWrapper.settings.segments?.thought !== undefined) };
  /**
   * The thoughts alone, without the grammar: generation stops where they end, and the history comes back
   * with them in the turn to continue. A model that answers without thinking is stopped at its first text,
   * which is dropped (the grammar then starts from the beginning).
   */
  const thinkFirst = async (
    history: ChatHistoryItem[],
  ): Promise<{ history: ChatHistoryItem[]; maxTokens: number; response?: Awaited<ReturnType<InstanceType<typeof LlamaChat>["generateResponse"]>>; stop?: NativeStopReason }> => {
    const stopper = new AbortController();
    const stop = () => stopper.abort();
    hooks.signal?.addEventListener("abort", stop, { once: true });
    if (hooks.signal?.aborted) stop();
    let inThought = false;
    let thoughtEnded = false;
    const before = { generatedTokens, firstTokenAt, lastTokenAt };
    // Only called when the chat wrapper has thought segments, so the thoughts' callback is there.
    const forwardThought = "onResponseChunk" in chatCommon ? chatCommon.onResponseChunk : undefined;
    const { grammar: _grammar, onTextChunk: _text, ...free } = chatCommon;
    try {
      const response = await chat!.generateResponse(history, {
        ...free,
        signal: stopper.signal,
        stopOnAbortSignal: true,
        onResponseChunk: (chunk) => {
          forwardThought?.(chunk);
          if (chunk.type !== "segment" || chunk.segmentType !== "thought") return;
          inThought = true;
          if (chunk.segmentEndTime !== undefined) {
            thoughtEnded = true;
            stop();
          }
        },
        onTextChunk: (chunk) => {
          if (!inThought && chunk.trim() !== "") stop();
        },
      });
      if (hooks.signal?.aborted || (inThought && !thoughtEnded)) return { history, maxTokens: 0, response, stop: response.metadata.stopReason };
      if (!inThought) {
        // Its first text is dropped, from the counts, the budget and the tokens shown.
        ({ generatedTokens, firstTokenAt, lastTokenAt } = before);
        hooks.discardText?.();
        outputTokensBefore = sequence.tokenMeter.getState().usedOutputTokens;
        return { history, maxTokens: common.maxTokens };
      }
      const left = common.maxTokens - (sequence.tokenMeter.getState().usedOutputTokens - outputTokensBefore);
      // The thoughts took the whole budget: the answer is empty, cut where max tokens cut it.
      if (left <= 0) return { history, maxTokens: 0, response, stop: "maxTokens" };
      const thought = response.fullResponse.filter((item) => typeof item !== "string" && item.type === "segment");
      const turn = history.at(-1) as ChatModelResponse;
      return { history: [...history.slice(0, -1), { type: "model", response: [...turn.response, ...thought] }], maxTokens: left };
    } finally {
      hooks.signal?.removeEventListener("abort", stop);
    }
  };
  try {
    if (request.maxTokens === 0) {
      // Nothing to generate (a prompt scored, echoed, or counted).
      text = "";
      nativeStop = "maxTokens";
    } else if (chat) {
      const plan = chatPlan(chat.chatWrapper, messages !== undefined ? { ...request, messages } : request, userText);
      const { functions, forced } = plan;
      // Under a grammar (a schema, a forced call) a thinking model thinks first, unconstrained, as llama-server
      // and ollama let it; the grammar applies from where its thoughts end (node-llama-cpp applies a grammar
      // from the first token, so its thoughts would be cut off).
      const thoughtFirst = grammar && request.think !== false && chat.chatWrapper.settings.segments?.thought ? await thinkFirst(plan.history) : { history: plan.history, maxTokens: common.maxTokens };
      const history = thoughtFirst.history;
      const remaining = { maxTokens: thoughtFirst.maxTokens };
      if (thoughtFirst.response) {
        // The request ended, or the thoughts used up the tokens: that is the whole answer.
        text = thoughts.answer(thoughtFirst.response.response);
        nativeStop = thoughtFirst.stop ?? thoughtFirst.response.metadata.stopReason;
      } else if (functions) {
        // Function calling and a grammar exclude each other in node-llama-cpp (the server refuses both at once).
        const { grammar: _grammar, ...withoutGrammar } = chatCommon;
        const response = await chat.generateResponse(history, { ...withoutGrammar, functions });
        text = thoughts.answer(response.response);
        nativeStop = response.metadata.stopReason;
        stopText = triggerText(response.metadata);
        toolCalls = response.functionCalls?.map((call) => ({ name: call.functionName, arguments: call.params }));
      } else if (forced) {
        // The call's JSON is not the answer's text: it is not streamed, and comes back as tool calls.
        const { onTextChunk: _notText, ...silent } = chatCommon;
        // The call's JSON as it is generated (a named function's arguments, or required's calls), for a stream.
        const callText = hooks.onCallArguments;
        const response = await chat.generateResponse(history, { ...silent, ...remaining, ...(callText ? { onTextChunk: callText } : {}) });
        // Not text either way; cut by max tokens, a named call keeps its partial arguments (as streamed), a required one is none.
        toolCalls = parseForcedCalls(response.response, request.toolChoice);
        text = "";
        nativeStop = response.metadata.stopReason;
      } else {
        const response = await chat.generateResponse(history, { ...chatCommon, ...remaining });
        text = thoughts.answer(response.response);
        nativeStop = response.metadata.stopReason;
        stopText = triggerText(response.metadata);
      }
    } else if (request.stop.length > 0) {
      // Stop texts are matched here, on the streamed text (see stopText.ts), and end generation through an abort.
      const filter = new StopTextFilter(request.stop);
      const stopper = new AbortController();
      hooks.signal?.addEventListener("abort", () => stopper.abort(), { once: true });
      if (hooks.signal?.aborted) stopper.abort();
      const { customStopTriggers: _matchedHere, ...options } = common;
      const response = await complete({
        ...options,
        signal: stopper.signal,
        stopOnAbortSignal: true,
        onToken: completionHooks.onToken,
        onTextChunk: (chunk: string) => {
          const text = filter.push(continuation.chunk(chunk));
          if (text.length > 0) shown.onText?.(text);
          if (filter.stopped) stopper.abort();
        },
      });
      if (!filter.stopped) {
        const rest = filter.flush();
        if (rest.length > 0) shown.onText?.(rest);
      }
      text = filter.text;
      nativeStop = filter.stopped ? "customStopTrigger" : response.metadata.stopReason;
      stopText = filter.matchedStop;
    } else {
      const response = await complete({ ...common, ...completionHooks });
      text = continuation.whole(response.response);
      nativeStop = response.metadata.stopReason;
    }
  } finally {
    chat?.dispose();
    completion?.dispose();
  }
  if (tagged !== undefined) {
    tagged.flush();
    text = tagged.answer;
  }
  const thinking = tagged !== undefined ? tagged.thinking : thoughts.thinking;
  const thinkingTokens = tagged !== undefined ? loaded.model.tokenize(tagged.thinking).length : thoughts.thinkingTokens;
  const endedAt = performance.now();
  ({ generatedTokens, lastTokenAt } = sampledTokens(generatedTokens, sequence.tokenMeter.getState().usedOutputTokens - outputTokensBefore, firstTokenAt, lastTokenAt, endedAt));
  // The prompt as the model saw it; the token meter also counts what a context shift evaluates again.
  const promptTokens = promptTokenCount;
  const promptMs = firstTokenAt !== undefined ? firstTokenAt - startedAt : null;
  const generationMs = firstTokenAt !== undefined && lastTokenAt !== undefined ? lastTokenAt - firstTokenAt : null;
  return {
    text,
    promptTokens,
    generatedTokens,
    stopReason: mapStopReason(nativeStop),
    ...(nativeStop === "customStopTrigger" && stopText !== undefined ? { stopText } : {}),
    truncatedPromptTokens,
    ...(toolCalls !== undefined && toolCalls.length > 0 ? { toolCalls } : {}),
    ...(thinking !== "" ? { thinking, thinkingTokens } : {}),
    ...(request.promptTokenIds !== undefined && !chat ? { promptText: promptTextOf(loaded, request.promptTokenIds) } : {}),
    // As ollama makes its context: the prompt, then the answer's text tokenised (no end-of-turn token).
    ...(request.returnTokens ? { tokens: [...promptTokenList, ...loaded.model.tokenize(text)] } : {}),
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
}

/**
 * A thinking model's thought tags for splitting a plain completion's text (its chat wrapper's thought
 * segment), or undefined when it has none; the prompt ending with the opening tag starts inside them.
 */
async function taggedThoughts(loaded: LoadedModel, request: GenerateRequest, promptTokens: readonly Token[], hooks: GenerateHooks): Promise<TaggedThoughtSplitter | undefined> {
  const segment = (await chatWrapperOf(loaded, request.think)).settings.segments?.thought;
  if (segment === undefined) return undefined;
  // A wrapper whose thoughts open with the response (no tag the text would show) is left as it is.
  if (typeof segment.prefix === "object" && "type" in segment.prefix) return undefined;
  const { LlamaText } = await loadNodeLlamaCpp();
  const open = LlamaText(segment.prefix).toString().trim();
  const close = LlamaText(segment.suffix ?? "").toString().trim();
  if (open === "" || close === "") return undefined;
  const promptEnd = loaded.model.detokenize(promptTokens.slice(-16), true).trimEnd();
  return new TaggedThoughtSplitter(open, close, hooks, promptEnd.endsWith(open));
}

/** The custom stop trigger node-llama-cpp stopped at, as text (its string parts: a request's stop texts are strings). */
function triggerText(metadata: { stopReason: string; customStopTrigger?: readonly (string | Token)[] }): string | undefined {
  if (metadata.stopReason !== "customStopTrigger" || metadata.customStopTrigger === undefined) return undefined;
  return metadata.customStopTrigger.filter((part): part is string => typeof part === "string").join("");
}

function repeatPenaltyOf(s: GenerateRequest["sampling"]) {
  const frequencyPenalty = s.frequencyPenalty ?? 0;
  const presencePenalty = s.presencePenalty ?? 0;
  if (s.repeatPenalty === 1 && frequencyPenalty === 0 && presencePenalty === 0) return false as const;
  return {
    penalty: s.repeatPenalty,
    ...(frequencyPenalty !== 0 ? { frequencyPenalty } : {}),
    ...(presencePenalty !== 0 ? { presencePenalty } : {}),
  };
}

function functionsOf(tools: NonNullable<GenerateRequest["tools"]>): ChatModelFunctions {
  const functions: Record<string, ChatModelFunctions[string]> = {};
  for (const tool of tools) {
    functions[tool.name] = {
      ...(tool.description !== undefined ? { description: tool.description } : {}),
      // The schema arrives as user data; node-llama-cpp turns what it supports into a grammar.
      ...(tool.parameters !== undefined ? { params: tool.parameters as never } : {}),
    };
  }
  return functions;
}

/**
 * The prompt's tokens as generation will evaluate them (template applied for chat), for the slot
 * scheduler's choice of the slot whose cache shares the longest prefix with them.
 */
export async function promptTokensOf(loaded: LoadedModel, request: GenerateRequest): Promise<readonly Token[]> {
  if (request.priorTokens !== undefined) return continuedPromptTokens(loaded, request);
  if (!request.chat && request.suffix !== undefined) return infillParts(loaded, request.prompt, request).tokens;
  if (!request.chat && request.promptTokenIds !== undefined) return tokenIdPromptTokens(loaded, request.promptTokenIds);
  if (!request.chat) return completionPromptTokens(loaded, request.prompt);
  return chatPromptTokens(loaded, await chatWrapperOf(loaded, request.think), request, request.prompt);
}

/**
 * Each loaded model's chat wrapper, resolved once: chatWrapperFor reads its cache file and rebuilds the
 * wrapper (4-6 ms for a Jinja template, measured), and a served chat request asked twice (its prompt's
 * tokens for the slot choice, then its generation).
 */
const resolvedWrappers = new WeakMap<LoadedModel, Promise<ResolvedChatWrapper>>();
/** And each thinking setting's variant of it (think: false or a level builds a wrapper of its own). */
const thinkingWrappers = new WeakMap<LoadedModel, Map<string, ChatWrapper>>();

/** The model's chat wrapper for a thinking setting (which may switch the template's thinking). */
export async function chatWrapperOf(loaded: LoadedModel, think: GenerateRequest["think"]): Promise<ChatWrapper> {
  let resolved = resolvedWrappers.get(loaded);
  if (resolved === undefined) {
    resolved = chatWrapperFor(loaded.model, loaded.summary.path);
    resolvedWrappers.set(loaded, resolved);
    resolved.catch(() => resolvedWrappers.delete(loaded));
  }
  const resolvedWrapper = await resolved;
  let variants = thinkingWrappers.get(loaded);
  if (variants === undefined) thinkingWrappers.set(loaded, (variants = new Map()));
  const key = String(think);
  let wrapper = variants.get(key);
  if (wrapper === undefined) variants.set(key, (wrapper = chatWrapperForThinking(await loadNodeLlamaCpp(), resolvedWrapper, think)));
  return wrapper;
}

function chatPromptTokens(loaded: LoadedModel, chatWrapper: ChatWrapper, request: GenerateRequest, userText: string): Token[] {
  const { history, functions } = chatPlan(chatWrapper, request, userText);
  const { contextText } = chatWrapper.generateContextState({ chatHistory: history, ...(functions ? { availableFunctions: functions } : {}) });
  return contextText.tokenize(loaded.model.tokenizer);
}

/**
 * A raw prompt's tokens as llama.cpp evaluates them (llama-cli, llama-server: the BOS, then the text
 * with an SPM tokeniser's word-start space, "▁Once"). LlamaCompletion given the string would drop that
 * space after the BOS ("O", "n", "ce": a start the model never saw in training), so lmrun hands it
 * these tokens (without the BOS, which LlamaCompletion adds). The counts and the slot's cached tokens
 * come from the same list. Special tokens written in the prompt (`<|im_start|>`, `[INST]`, `</s>`) are
 * those tokens, as llama-server, llama-completion and ollama's raw mode read them: a prompt formatted by
 * hand for /v1/completions works as it does there.
 */
function completionPromptTokens(loaded: LoadedModel, text: string): Token[] {
  const bos = completionBos(loaded);
  const tokens = loaded.model.tokenize(text, true);
  return bos !== undefined ? [bos, ...tokens] : tokens;
}

/**
 * A raw prompt given as token ids (OpenAI's `prompt: [ids]`, what lm-evaluation-harness sends): those tokens, with
 * the beginning token first when the model takes one and they do not start with it (LlamaCompletion puts it there).
 */
function tokenIdPromptTokens(loaded: LoadedModel, ids: readonly number[]): Token[] {
  checkTokenIds(loaded, ids, "the prompt's token ids", "Send ids from this model's tokenizer (POST /tokenize), or the prompt as text", "prompt");
  const bos = completionBos(loaded);
  return bos !== undefined && ids[0] !== bos ? [bos, ...(ids as Token[])] : [...(ids as Token[])];
}

/** How many of a raw prompt's tokens (promptTokensOf's) are its own: all but a beginning token lmrun put before them. */
export function ownPromptTokens(loaded: LoadedModel, request: GenerateRequest, tokens: readonly Token[]): number {
  if (request.promptTokenIds !== undefined) return request.promptTokenIds.length;
  return tokens.length - (completionBos(loaded) !== undefined ? 1 : 0);
}

/**
 * An exchange continued from its earlier tokens (ollama's `context`): the beginning token, the earlier
 * tokens, then this turn as the template renders it alone (or the raw prompt's tokens), each without a
 * beginning token of its own. Past the context, with truncate, generation drops the oldest earlier tokens.
 */
async function continuedPromptTokens(loaded: LoadedModel, request: GenerateRequest): Promise<Token[]> {
  const prior = request.priorTokens ?? [];
  checkTokenIds(loaded, prior, `the earlier exchange's tokens (ollama's "context")`, "Send back the context this model returned, or leave it out", "context");
  const turn = request.chat ? chatPromptTokens(loaded, await chatWrapperOf(loaded, request.think), request, request.prompt) : completionPromptTokens(loaded, request.prompt);
  const bos = completionBos(loaded);
  return [...(bos !== undefined ? [bos] : []), ...withoutBos(loaded, prior as Token[]), ...withoutBos(loaded, turn)];
}

/**
 * A fill-in-the-middle prompt as node-llama-cpp's generateInfillCompletion lays it out (and llama-server's
 * /infill): the beginning token if the model takes one, then the prefix and suffix tokens, each after its
 * marker, then the middle marker (without one, suffix first). The texts are tokenised as it tokenises them;
 * `prefixTail` (llama-server's /infill `prompt`) apart, after the prefix, as llama-server puts it; other
 * files' text (`infillExtra`) before the prefix marker (infillExtraTokens).
 */
function infillParts(
  loaded: LoadedModel,
  prefix: string,
  request: Pick<GenerateRequest, "suffix" | "prefixTail" | "infillExtra" | "maxTokens">,
): { prefixTokens: Token[]; suffixTokens: Token[]; extraTokens: Token[]; tokens: Token[] } {
  const suffix = request.suffix ?? "";
  const prefixTail = request.prefixTail ?? "";
  const { prefix: pre, suffix: suf, middle } = loaded.model.tokens.infill;
  if (pre === null || suf === null) {
    throw new LmrunError(`${loaded.summary.fileName} cannot fill in the middle: its vocabulary has no fill-in-the-middle tokens`, {
      exitCode: 2,
      hint: "Use a code model trained for it (Qwen2.5-Coder, CodeLlama, StarCoder2, DeepSeek-Coder), or leave out the suffix",
    });
  }
  const prefixTokens = [...loaded.model.tokenize(prefix, false, "trimLeadingSpace"), ...(prefixTail !== "" ? loaded.model.tokenize(prefixTail, false, "trimLeadingSpace") : [])];
  const suffixTokens = loaded.model.tokenize(suffix, false, "trimLeadingSpace");
  const bos = completionBos(loaded);
  const head = bos !== undefined ? [bos] : [];
  const extraTokens = request.infillExtra !== undefined ? infillExtraTokens(loaded, request.infillExtra, request.maxTokens) : [];
  const fim = middle !== null ? [pre, ...prefixTokens, suf, ...suffixTokens, middle] : [suf, ...suffixTokens, pre, ...prefixTokens];
  return { prefixTokens, suffixTokens, extraTokens, tokens: [...head, ...extraTokens, ...fim] };
}

/**
 * Other files' text for a fill-in-the-middle prompt, as llama-server's format_prompt_infill lays it out (the
 * repository-level pattern of Qwen2.5-Coder's paper): the repository token and "myproject", each chunk after
 * the file separator token and its file name, then the separator and "filename" for the file being edited
 * (with those tokens in the vocabulary, that frame is there with no chunks too); without them each chunk after
 * a "--- snippet ---" line. Of that, the end that fits what llama-server gives it: the context less a batch and
 * twice the tokens to generate (nothing in a context of one batch).
 */
function infillExtraTokens(loaded: LoadedModel, extra: ReadonlyArray<{ filename: string; text: string }>, maxTokens: number): Token[] {
  const { model } = loaded;
  const tokenize = (text: string) => model.tokenize(text, false, "trimLeadingSpace");
  const { repository, separator } = repositoryTokens(model);
  const tokens: Token[] = repository !== undefined ? [repository, ...tokenize("myproject\n")] : [];
  for (const chunk of extra) {
    tokens.push(...(separator !== undefined ? [separator, ...tokenize(`${chunk.filename}\n`)] : tokenize("\n\n--- snippet ---\n\n")), ...tokenize(chunk.text));
  }
  if (separator !== undefined) tokens.push(separator, ...tokenize("filename\n"));
  const room = Math.max(0, loaded.context.contextSize - loaded.context.batchSize - 2 * Math.max(0, maxTokens));
  return tokens.slice(tokens.length - Math.min(room, tokens.length));
}

const repositoryTokensByModel = new WeakMap<LlamaModel, { repository: Token | undefined; separator: Token | undefined }>();

/**
 * A code model's repository and file-separator tokens, as llama.cpp finds them (llama-vocab.cpp): ids in the header,
 * else these texts. Looked up once a model (a vocabulary is up to ~150k entries; each /infill asks twice).
 */
function repositoryTokens(model: LlamaModel): { repository: Token | undefined; separator: Token | undefined } {
  let found = repositoryTokensByModel.get(model);
  if (found !== undefined) return found;
  const ggml: Record<string, unknown> | undefined = model.fileInfo.metadata?.tokenizer?.ggml;
  const vocabulary = Array.isArray(ggml?.tokens) ? (ggml.tokens as unknown[]) : [];
  const token = (idKey: string, texts: string[]): Token | undefined => {
    const id = ggml?.[idKey];
    if (typeof id === "number") return id as Token;
    const index = vocabulary.findIndex((entry) => typeof entry === "string" && texts.includes(entry));
    return index >= 0 ? (index as Token) : undefined;
  };
  found = {
    repository: token("fim_rep_token_id", ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]),
    separator: token("fim_sep_token_id", ["<|file_sep|>"]),
  };
  repositoryTokensByModel.set(model, found);
  return found;
}

/** Tokens without the beginning token LlamaCompletion puts first (a continued prompt has one, at its start). */
function withoutBos(loaded: LoadedModel, tokens: readonly Token[]): readonly Token[] {
  const bos = completionBos(loaded);
  return bos !== undefined && tokens[0] === bos ? tokens.slice(1) : tokens;
}

/** The token LlamaCompletion puts before the prompt, if any (its resolveBeginningTokenToPrepend's rule). */
function completionBos(loaded: LoadedModel): Token | undefined {
  const { vocabularyType, tokens } = loaded.model;
  if (vocabularyType === "rwkv" || vocabularyType === "ugm") return undefined;
  if (vocabularyType === "wpm") return tokens.bos ?? undefined;
  return tokens.bos !== null && tokens.shouldPrependBosToken ? tokens.bos : undefined;
}

/** The prompt's tokens as the model will see them: the chat template's, or llama.cpp's for a raw prompt. */
function promptTokensFor(
  loaded: LoadedModel,
  chat: InstanceType<typeof import("node-llama-cpp").LlamaChat> | undefined,
  request: GenerateRequest,
  userText: string,
): Token[] {
  if (!chat && request.suffix !== undefined) return infillParts(loaded, userText, request).tokens;
  if (!chat && request.promptTokenIds !== undefined) return tokenIdPromptTokens(loaded, request.promptTokenIds);
  if (!chat) return completionPromptTokens(loaded, userText);
  return chatPromptTokens(loaded, chat.chatWrapper, request, userText);
}
