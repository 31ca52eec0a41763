import { parseChatMessages } from "../../chat/messages.js";
import type { ChatMessage } from "../../client/wire.js";
import { UsageError } from "../../errors.js";

/**
 * The JSONL inputs of `lmrun eval gen`: tasks ({"id", "prompt" | "messages", "reference" |
 * "references"}) and, for --score-only, answers ({"id", "answer", "reference" | "references"}).
 * Every problem names its line.
 */

export interface GenTask {
  id: string;
  /** 1-based line in the file. */
  line: number;
  prompt: string;
  systemPrompt?: string;
  /** A conversation of several turns (ends with the user turn to answer); needs a chat template. */
  messages?: ChatMessage[];
  references: string[];
}

export interface Answer {
  id: string;
  line: number;
  answer: string;
  references: string[];
}

interface Line {
  line: number;
  value: Record<string, unknown>;
}

function readLines(text: string, source: string, expected: string): Line[] {
  const out: Line[] = [];
  text.split("\n").forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === "") return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw new UsageError(`${source} line ${i + 1}: not JSON (${(error as Error).message})`, `Each line must be one JSON object: ${expected}`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new UsageError(`${source} line ${i + 1}: expected a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`, `Each line must be ${expected}`);
    }
    out.push({ line: i + 1, value: value as Record<string, unknown> });
  });
  if (out.length === 0) throw new UsageError(`${source} holds no ${source.endsWith(".jsonl") ? "lines" : "JSON lines"}`, `Give one JSON object per line: ${expected}`);
  return out;
}

function idOf(l: Line, source: string, seen: Set<string>): string {
  const raw = l.value.id ?? String(l.line);
  if (typeof raw !== "string" && typeof raw !== "number") throw new UsageError(`${source} line ${l.line}: "id" must be a string or a number`);
  const id = String(raw);
  if (seen.has(id)) throw new UsageError(`${source} line ${l.line}: the id "${id}" is used twice`, "Give every line its own id");
  seen.add(id);
  return id;
}

/** "reference": "..." or "references": ["...", ...]; undefined when neither is there. */
function referencesOf(l: Line, source: string): string[] | undefined {
  const { reference, references } = l.value;
  if (reference !== undefined && references !== undefined) throw new UsageError(`${source} line ${l.line}: give "reference" or "references", not both`);
  if (reference !== undefined) {
    if (typeof reference !== "string") throw new UsageError(`${source} line ${l.line}: "reference" must be a string`);
    return [reference];
  }
  if (references !== undefined) {
    if (!Array.isArray(references) || references.length === 0 || references.some((r) => typeof r !== "string")) {
      throw new UsageError(`${source} line ${l.line}: "references" must be a non-empty array of strings`);
    }
    return references as string[];
  }
  return undefined;
}

const TASK_SHAPE = '{"id", "prompt" | "messages", "reference" | "references"}';

export function parseGenTasks(text: string, source: string): GenTask[] {
  const seen = new Set<string>();
  return readLines(text, source, TASK_SHAPE).map((l) => {
    const id = idOf(l, source, seen);
    const references = referencesOf(l, source);
    if (references === undefined) throw new UsageError(`${source} line ${l.line}: no "reference" or "references"`, "Every task needs the answer(s) to score against");
    const { prompt, messages } = l.value;
    if ((prompt === undefined) === (messages === undefined)) throw new UsageError(`${source} line ${l.line}: give "prompt" or "messages" (one of them)`, `Lines look like ${TASK_SHAPE}`);
    if (prompt !== undefined) {
      if (typeof prompt !== "string" || prompt === "") throw new UsageError(`${source} line ${l.line}: "prompt" must be a non-empty string`);
      return { id, line: l.line, prompt, references };
    }
    return { id, line: l.line, ...fromMessages(messages, `${source} line ${l.line}`), references };
  });
}

/**
 * A conversation: system (first only), user and assistant turns, ending with the user turn to
 * answer. A system message and one user message become prompt + systemPrompt (as one-shot `run`
 * takes them, and what --raw can use); longer conversations are kept as messages.
 */
function fromMessages(messages: unknown, where: string): Pick<GenTask, "prompt" | "systemPrompt" | "messages"> {
  const shape = '[{"role": "system", "content": ...}, {"role": "user", "content": ...}, {"role": "assistant", ...}, {"role": "user", ...}]';
  const list = parseChatMessages(messages);
  if (typeof list === "string") throw new UsageError(`${where}: ${list}`, `e.g. ${shape}`);
  const late = list.findIndex((m, i) => m.role === "system" && i > 0);
  if (late > 0) throw new UsageError(`${where}: a system message may only come first (message ${late + 1})`, `e.g. ${shape}`);
  const system = list[0]!.role === "system" ? list[0]!.content : undefined;
  const turns = system !== undefined ? list.slice(1) : list;
  const last = turns.at(-1)!.content;
  if (turns.length === 1) return { prompt: last, ...(system !== undefined ? { systemPrompt: system } : {}) };
  return { prompt: last, messages: list };
}

/** --score-only: answers with their references, or references looked up by id in the tasks file. */
export function parseAnswers(text: string, source: string, tasks?: Map<string, GenTask>): Answer[] {
  const seen = new Set<string>();
  return readLines(text, source, '{"id", "answer", "reference" | "references"}').map((l) => {
    const id = idOf(l, source, seen);
    const { answer } = l.value;
    if (typeof answer !== "string") throw new UsageError(`${source} line ${l.line}: ${answer === undefined ? 'no "answer"' : '"answer" must be a string'}`);
    const references = referencesOf(l, source) ?? tasks?.get(id)?.references;
    if (references === undefined) {
      throw new UsageError(`${source} line ${l.line}: no "reference" or "references" for id "${id}"${tasks ? " (nor in the tasks file)" : ""}`, "Add them to the line, or give the tasks file with -f");
    }
    return { id, line: l.line, answer, references };
  });
}
