import { parseChatMessages } from "../chat/messages.js";
import { MAX_TOP_LOGPROBS } from "../engine/types.js";
import { UsageError } from "../errors.js";
import type { ChatMessage } from "./wire.js";

/**
 * `lmrun batch` input: one JSON object a line (JSONL), each a request:
 *   {"id": "q1", "prompt": "...", "system": "...", "temperature": 0, "max_tokens": 64, "stop": ["\n"]}
 *   {"id": 7, "messages": [{"role": "system"|"user"|"assistant", "content": "..."}], "seed": 1}
 *   {"id": "q2", "prompt": "...", "logprobs": true, "top_logprobs": 5}
 * `id` (a string or a number; default: the line number) must be unique: --resume skips by it.
 * Sampling fields use the OpenAI/ollama names; absent ones take the command's flags and settings.
 * Unknown fields are ignored, as the APIs do. Blank lines are skipped.
 */

export type BatchMessage = ChatMessage;

export interface BatchSamplingOverrides {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  seed?: number;
  maxTokens?: number;
  stop?: string[];
}

export interface BatchItem {
  id: string | number;
  /** 1-based line of the input file. */
  line: number;
  prompt?: string;
  messages?: BatchMessage[];
  system?: string;
  sampling: BatchSamplingOverrides;
  /** false: a thinking model answers without thinking (ollama's `think`). */
  think?: boolean;
  /** `logprobs: true`: each answer token's log-probability, with `top_logprobs` alternatives (0–20). */
  logprobs?: { top: number };
}

export interface BadLine {
  line: number;
  reason: string;
}

/** Keys are compared as text: id 7 and id "7" are the same request. */
export function idKey(id: string | number): string {
  return String(id);
}

const NUMBER_FIELDS: Array<[string, keyof BatchSamplingOverrides, number, number, boolean]> = [
  ["temperature", "temperature", 0, 100, false],
  ["top_k", "topK", 0, 1_000_000, true],
  ["top_p", "topP", 0, 1, false],
  ["min_p", "minP", 0, 1, false],
  ["repeat_penalty", "repeatPenalty", 0, 10, false],
  ["seed", "seed", 0, 4294967295, true],
  ["max_tokens", "maxTokens", 1, 10_000_000, true],
  ["num_predict", "maxTokens", 1, 10_000_000, true],
];

/** Every line read; bad ones collected (by line number) rather than thrown, so all can be named at once. */
export function parseBatch(text: string): { items: BatchItem[]; bad: BadLine[] } {
  const items: BatchItem[] = [];
  const bad: BadLine[] = [];
  const seen = new Map<string, number>();
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === "") return;
    const parsed = parseItem(raw, line);
    if ("reason" in parsed) {
      bad.push(parsed);
      return;
    }
    const key = idKey(parsed.id);
    const first = seen.get(key);
    if (first !== undefined) {
      bad.push({ line, reason: `id ${JSON.stringify(parsed.id)} was already used on line ${first}` });
      return;
    }
    seen.set(key, line);
    items.push(parsed);
  });
  return { items, bad };
}

function parseItem(raw: string, line: number): BatchItem | BadLine {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { line, reason: "not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { line, reason: "not a JSON object" };
  const o = value as Record<string, unknown>;
  let id: string | number = line;
  if (o.id !== undefined) {
    if (typeof o.id === "string" && o.id !== "") id = o.id;
    else if (typeof o.id === "number" && Number.isFinite(o.id)) id = o.id;
    else return { line, reason: "id must be a non-empty string or a number" };
  }
  const item: BatchItem = { id, line, sampling: {} };
  if (o.prompt !== undefined && o.messages !== undefined) return { line, reason: 'give "prompt" or "messages", not both' };
  if (o.prompt !== undefined) {
    if (typeof o.prompt !== "string" || o.prompt.trim() === "") return { line, reason: '"prompt" must be a non-empty string' };
    item.prompt = o.prompt;
  } else if (o.messages !== undefined) {
    const messages = parseChatMessages(o.messages);
    if (typeof messages === "string") return { line, reason: messages };
    item.messages = messages;
  } else {
    return { line, reason: 'no "prompt" or "messages"' };
  }
  if (o.system !== undefined) {
    if (typeof o.system !== "string") return { line, reason: '"system" must be a string' };
    if (item.messages !== undefined) return { line, reason: 'with "messages", put the system prompt in a system message' };
    item.system = o.system;
  }
  for (const [field, key, min, max, integer] of NUMBER_FIELDS) {
    const v = o[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      return { line, reason: `"${field}" must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}` };
    }
    (item.sampling as Record<string, number>)[key] = v;
  }
  if (o.think !== undefined && o.think !== null) {
    if (typeof o.think !== "boolean") return { line, reason: '"think" must be true or false' };
    item.think = o.think;
  }
  const top = o.top_logprobs;
  if (top !== undefined && top !== null && (typeof top !== "number" || !Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS)) {
    return { line, reason: `"top_logprobs" must be a whole number from 0 to ${MAX_TOP_LOGPROBS}` };
  }
  if (o.logprobs !== undefined && o.logprobs !== null && typeof o.logprobs !== "boolean") return { line, reason: '"logprobs" must be true or false' };
  if (o.logprobs === true) item.logprobs = { top: typeof top === "number" ? top : 0 };
  else if (typeof top === "number" && top > 0) return { line, reason: '"top_logprobs" needs "logprobs": true' };
  if (o.stop !== undefined && o.stop !== null) {
    const stop = typeof o.stop === "string" ? [o.stop] : o.stop;
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string" && s !== "")) return { line, reason: '"stop" must be a string or an array of non-empty strings' };
    item.sampling.stop = stop as string[];
  }
  return item;
}

/** All bad lines in one error line (the first few named), so the file is fixed in one go. */
export function badLinesError(source: string, bad: BadLine[]): UsageError {
  const first = bad[0]!;
  const more = bad.length > 1 ? ` (and ${bad.length - 1} more bad line${bad.length > 2 ? "s" : ""}: ${bad.slice(1, 11).map((b) => b.line).join(", ")}${bad.length > 11 ? ", ..." : ""})` : "";
  return new UsageError(`${source} line ${first.line}: ${first.reason}${more}`, "Nothing was run; fix the file and run again");
}
