/**
 * The part of ollama's wire API that lmrun's own clients use (run, chat, ps, stop, batch), plus the
 * `lmrun` extension that `lmrun serve` puts on a stream's final object. Types only: this module is on
 * the client path, which must import neither node-llama-cpp nor Ink.
 */
import type { WireTokenLogprob } from "../server/logprobs.js";
import type { LmrunFinalExtension } from "../server/wire.js";

export interface WireOptions {
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  repeat_penalty?: number;
  seed?: number;
  num_predict?: number;
  stop?: string[];
}

export interface GenerateBody {
  model: string;
  prompt?: string;
  system?: string;
  /** No chat template: plain completion (`run --raw`). */
  raw?: boolean;
  stream?: boolean;
  format?: "json" | object;
  options?: WireOptions;
  keep_alive?: number | string;
  /** Cut an overlong prompt (ollama's default: true); `run` sends false unless --truncate, as it runs locally. */
  truncate?: boolean;
  /** false: a thinking model answers without thinking. */
  think?: boolean;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatBody {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  think?: boolean;
  format?: "json" | object;
  options?: WireOptions;
}

/** What in-process `run --json` reports about how the model was loaded. */
export interface WireLoad {
  contextSize: number;
  threads: number;
  batchThreads: number;
  gpu: string | false;
  gpuLayers: number;
  threadpool?: string;
  /** In-process runs only: the -c asked for when llama.cpp raised it, the tuned setting applied, tokens by thread count. */
  requestedContextSize?: number | null;
  tuned?: object | null;
  generationThreads?: Record<string, number>;
}

/** lmrun's extension on a stream's final object (serve-core's src/server/wire.ts); other clients ignore it. */
export type LmrunExtension = LmrunFinalExtension;

/** One NDJSON object of /api/generate (`response`) or /api/chat (`message`). */
export interface StreamChunk {
  model?: string;
  response?: string;
  /** A thinking model's thoughts (/api/generate; /api/chat has message.thinking). */
  thinking?: string;
  message?: { role: string; content: string; thinking?: string };
  done: boolean;
  done_reason?: string;
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
  context_length?: number;
  /** With `logprobs` asked for: this object's tokens (a whole answer's, unstreamed). */
  logprobs?: WireTokenLogprob[];
  error?: string;
  lmrun?: LmrunExtension;
}

/** One entry of GET /api/ps. */
export interface PsEntry {
  name: string;
  model: string;
  size: number;
  size_vram?: number;
  digest?: string;
  expires_at?: string;
  context_length?: number;
  details?: { format?: string; family?: string; parameter_size?: string; quantization_level?: string };
  lmrun?: Record<string, unknown>;
}

/** One entry of GET /api/tags. */
export interface TagEntry {
  name: string;
  model?: string;
  size?: number;
  lmrun?: { path?: string } & Record<string, unknown>;
}
