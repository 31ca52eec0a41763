/** Types shared between the engine and its callers. No node-llama-cpp types leak out of engine/. */

export type GpuChoice = "auto" | "cuda" | "vulkan" | "metal" | "cpu";
export type GpuLayers = number | "max" | "auto";

export interface LoadOptions {
  gpu: GpuChoice;
  gpuLayers: GpuLayers;
  /** Context size in tokens; undefined = the model's training context, capped to fit memory. */
  contextSize?: number | undefined;
  /** Threads for single-token generation (llama.cpp's -t). */
  threads: number;
  /**
   * `threads` is lmrun's own choice (not the user's): generation, and prompt batches when
   * batchThreads is not given either, may then use fewer while other processes keep the cores busy
   * (engine/native/threadpool.c).
   */
  adaptiveThreads?: boolean | undefined;
  /** Threads for prompt batches (llama.cpp's -tb); undefined = all math cores. */
  batchThreads?: number | undefined;
  batchSize?: number | undefined;
  /** Independent sequences in the context, each with contextSize cells (default 1; perplexity scores chunks in parallel). */
  sequences?: number | undefined;
  /**
   * One KV cache shared by all sequences (llama.cpp's kv_unified), when the threadpool shim can set
   * it: cells copied between sequences are shared, and a batch of any mix of sequences is one pass.
   * LoadedModel.kvUnified says whether it was granted.
   */
  unifiedKvCache?: boolean | undefined;
  /**
   * The context only generates (logits for the last token of each sequence in a batch): llama.cpp's
   * compute buffer is sized for that, as llama-server sizes it (n_outputs_max = n_parallel), not for a
   * whole batch of logits (n_vocab x batch floats: 62 MiB for a 32k vocabulary at -b 512, ~300 MiB for
   * Qwen3's 152k, by arithmetic). Not for perplexity, eval scoring or bench, which read many rows or match llama.cpp's tools.
   */
  generationOnly?: boolean | undefined;
  /** Refuse to load when the estimate exceeds this many bytes of RAM (default: available memory). */
  maxRamBytes?: number | undefined;
  /** KV cache types (llama.cpp's -ctk/-ctv: f16, q8_0, …); undefined = f16. */
  cacheTypeK?: string | undefined;
  cacheTypeV?: string | undefined;
  verbose: boolean;
  signal?: AbortSignal | undefined;
  /** llama.cpp RPC workers to offload to (--rpc): needs an engine build with RPC. */
  rpc?: RpcLoadOptions | undefined;
}

export interface RpcLoadOptions {
  /** "host:port" each, already parsed and checked (rpc/endpoints.ts). */
  endpoints: { host: string; port: number; address: string }[];
  /** --tensor-split proportions, in llama.cpp's device order (the workers first). */
  tensorSplit?: number[] | undefined;
}

export interface SamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  /** Undefined = random. */
  seed?: number | undefined;
  /** OpenAI's penalties (0 = off), applied with repeatPenalty over the last 64 tokens. */
  frequencyPenalty?: number | undefined;
  presencePenalty?: number | undefined;
}

/** One message of a multi-turn chat request (the server's /v1/chat/completions and /api/chat). */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  text: string;
  /** An assistant turn's function calls; their results come in the tool messages after it. */
  toolCalls?: Array<{ id: string; name: string; arguments: unknown }> | undefined;
  /** A tool message: the id of the call it answers. */
  toolCallId?: string | undefined;
  /** An assistant turn's thoughts, as a client sends them back (a thinking model's template may show them again). */
  thinking?: string | undefined;
}

/** A function the model may call (OpenAI tools / ollama tools), its parameters a JSON schema. */
export interface ToolDefinition {
  name: string;
  description?: string | undefined;
  parameters?: object | undefined;
}

/**
 * Whether the model must call a tool: `auto` lets it choose (node-llama-cpp's function calling);
 * `required` wants at least one call (several when `parallel`), `function` a call of that one.
 */
export type ToolChoice = "auto" | { kind: "required"; parallel: boolean } | { kind: "function"; name: string };

export interface ToolCall {
  name: string;
  arguments: unknown;
  /** The arguments' JSON as the model wrote it (a forced call's; cut short by max tokens it does not parse). */
  argumentsText?: string;
}

export interface GenerateRequest {
  prompt: string;
  /** Apply the model's chat template (false = plain completion). */
  chat: boolean;
  systemPrompt?: string | undefined;
  /** Tokens to generate at most; -1: until the context is full (llama.cpp's -n -1). */
  maxTokens: number;
  stop: string[];
  sampling: SamplingOptions;
  /** A JSON schema object, or "json" for any JSON value. */
  jsonSchema?: object | "json" | undefined;
  /** Keep the end of an overlong prompt instead of refusing it. */
  truncate: boolean;
  /** A whole conversation instead of prompt + systemPrompt (chat only); it ends with the turn to answer. */
  messages?: ChatMessage[] | undefined;
  /** Functions the model may call (chat only; needs a chat wrapper with function calling). */
  tools?: ToolDefinition[] | undefined;
  /** Default auto. */
  toolChoice?: ToolChoice | undefined;
  /**
   * A thinking model's thoughts (chat only): false asks for none (the template's own switch where the chat
   * wrapper has it, else node-llama-cpp's thought budget of 0); a level is the reasoning effort a model that
   * takes one is told (gpt-oss); otherwise the model thinks as it was made to. Thoughts come apart from the answer.
   */
  think?: ThinkSetting | undefined;
  /**
   * ollama's `context`: the tokens of an earlier exchange (as `tokens` returned them) that this prompt
   * continues. They go in as they are, then this turn (the template applied when `chat`); the answer is
   * a plain continuation of the whole. Truncation drops the oldest of them first.
   */
  priorTokens?: readonly number[] | undefined;
  /** Return the exchange's tokens (the prompt's, then the answer's text tokenised), ollama's `context`. */
  returnTokens?: boolean | undefined;
  /**
   * Fill in the middle (not chat): the text that goes after the answer; `prompt` is what goes before it.
   * Needs a model with fill-in-the-middle tokens (code models); node-llama-cpp lays the prompt out.
   */
  suffix?: string | undefined;
  /**
   * With `suffix`: more of the prefix, tokenised apart and put right after it (llama-server's /infill `prompt`,
   * the cursor line's text before the cursor).
   */
  prefixTail?: string | undefined;
  /**
   * With `suffix`: other files' text put before the fill-in-the-middle prompt (llama-server's /infill
   * `input_extra`, llama.vscode's ring buffer of recently seen code), as llama-server lays it out; given, even
   * empty, a model with repository tokens gets their frame, as there (ollama's suffix leaves it undefined).
   */
  infillExtra?: ReadonlyArray<{ filename: string; text: string }> | undefined;
  /**
   * A plain completion (not chat, or a continued exchange) of a thinking model: its thoughts, between the
   * chat wrapper's thought tags, come apart from the answer (ollama's /api/generate does so, raw or not).
   */
  thoughtsInText?: boolean | undefined;
  /**
   * Each answer token's log-probability, and the `top` most likely tokens at its position (0: none). `endToken`:
   * an end-of-generation token the answer stopped at ends the list too (legacy completions, as vLLM lists it:
   * lm-evaluation-harness takes the last entry for the generated token).
   */
  logprobs?: { top: number; endToken?: boolean } | undefined;
  /**
   * A plain completion's prompt as token ids (OpenAI's `prompt: [ids]`), evaluated as given: `prompt` is then
   * unused. A beginning token goes first when the model takes one and the ids do not start with it.
   */
  promptTokenIds?: readonly number[] | undefined;
}

/** The most alternatives a request gets at a position (OpenAI's and ollama's `top_logprobs` limit). */
export const MAX_TOP_LOGPROBS = 20;

/** A token and its log-probability: llama.cpp's text of it (an incomplete character left out), and its bytes. */
export interface TokenProbability {
  id: number;
  token: string;
  bytes: number[];
  logprob: number;
}

/** An answer token's log-probability, with the most likely tokens at its position (most likely first). */
export interface TokenLogprob extends TokenProbability {
  top: TokenProbability[];
}

/** A prompt token's log-probability given the tokens before it: null (and no alternatives) for a first token with none. */
export interface PromptTokenLogprob extends Omit<TokenProbability, "logprob"> {
  logprob: number | null;
  top: TokenProbability[] | null;
}

/** Reasoning effort, for models told how hard to think (gpt-oss: "Reasoning: high"). */
export type ThinkLevel = "low" | "medium" | "high";
export type ThinkSetting = boolean | ThinkLevel;

export type StopReason = "eos" | "maxTokens" | "stop" | "abort";

export interface GenerationTimings {
  ttftMs: number | null;
  promptMs: number | null;
  generationMs: number | null;
  totalMs: number;
  promptTokensPerSecond: number | null;
  generationTokensPerSecond: number | null;
}

export interface GenerationResult {
  text: string;
  promptTokens: number;
  generatedTokens: number;
  stopReason: StopReason;
  truncatedPromptTokens: number;
  timings: GenerationTimings;
  /** The function calls the model made (then the text is what came before them). */
  toolCalls?: ToolCall[] | undefined;
  /** A thinking model's thoughts, apart from the answer (its tokens are among generatedTokens). */
  thinking?: string | undefined;
  /** How many of generatedTokens the thoughts' text took. */
  thinkingTokens?: number | undefined;
  /** The request's stop text that ended generation (stopReason "stop"). */
  stopText?: string | undefined;
  /** With request.returnTokens: the prompt's tokens and the answer's, to continue from (priorTokens). */
  tokens?: number[] | undefined;
  /** With request.logprobs: the answer's tokens (not the thoughts', a stop text's or the end-of-turn token). */
  logprobs?: TokenLogprob[] | undefined;
  /**
   * The prompt's own tokens' log-probabilities (not a beginning token lmrun put before them), each given those
   * before it, when they were asked for (PromptScorer: OpenAI's legacy completions with `echo` and `logprobs`).
   */
  promptLogprobs?: PromptTokenLogprob[] | undefined;
  /** With request.promptTokenIds: the prompt as text (what `echo` shows). */
  promptText?: string | undefined;
}

export interface ModelSummary {
  path: string;
  fileName: string;
  architecture: string | undefined;
  name: string | undefined;
  trainContextSize: number;
  contextSize: number;
  /** The -c asked for, when llama.cpp made the context bigger (it pads small ones, to 256 cells here). */
  requestedContextSize?: number | undefined;
  hasChatTemplate: boolean;
  sizeBytes: number;
  parameters: number | undefined;
  fileType: string | undefined;
  gpu: string | false;
  gpuLayers: number;
  threads: number;
  batchThreads: number;
  /** The RPC workers' devices the model was offloaded to (--rpc), with their memory at load. */
  rpcDevices?: { name: string; endpoint: string; freeBytes: number; totalBytes: number }[] | undefined;
}
