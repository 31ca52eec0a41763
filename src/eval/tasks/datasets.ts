import { UsageError } from "../../errors.js";
import { hellaswagOrder, pickWithoutReplacement } from "./rng.js";

/**
 * The three input formats of llama-perplexity's task scores, parsed and selected as
 * tools/perplexity/perplexity.cpp does (which lines it keeps, which it drops, which tasks it picks),
 * but with one clear error naming the line or record where it would crash or silently misread.
 */

export type TaskKind = "hellaswag" | "winogrande" | "mc";

export interface HellaswagTask {
  kind: "hellaswag";
  /** 0-based index of the task in the file. */
  index: number;
  context: string;
  gold: number;
  endings: [string, string, string, string];
}

export interface WinograndeTask {
  kind: "winogrande";
  index: number;
  /** The sentence before and after the "_". */
  first: string;
  second: string;
  choices: [string, string];
  /** 1 or 2. */
  answer: number;
}

export interface McTask {
  kind: "mc";
  index: number;
  question: string;
  answers: string[];
  /** 1 for a correct answer (mc1: exactly one). */
  labels: number[];
}

export type ChoiceTask = HellaswagTask | WinograndeTask | McTask;

export interface Selection<T> {
  tasks: T[];
  /** Tasks in the file. */
  available: number;
  /** How they were chosen, for --json and the header line. */
  selection: "all, in file order" | "random subset (mt19937 seed 1)" | "shuffled (mt19937 seed 1)";
  /** Lines skipped as llama-perplexity skips them (Winogrande), with why. */
  skipped: string[];
}

/** llama.cpp's -f: the whole file, one trailing newline dropped. */
function dropTrailingNewline(text: string): string {
  return text.endsWith("\n") ? text.slice(0, -1) : text;
}

/** std::getline over the whole text: a final empty piece is no line. */
function getlines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** hellaswag_val_full.txt: 6 lines per task (context, gold index, four endings); always shuffled, 400 by default. */
export function parseHellaswag(text: string, source: string, count: number): Selection<HellaswagTask> {
  const lines = getlines(dropTrailingNewline(text));
  if (lines.length === 0) throw new UsageError(`${source} holds no tasks`, "Give llama.cpp's hellaswag_val_full.txt format: 6 lines per task");
  if (lines.length % 6 !== 0) {
    throw new UsageError(
      `${source} has ${lines.length} lines, not a multiple of 6 (line ${lines.length - (lines.length % 6) + 1} starts an incomplete task)`,
      "HellaSwag files hold 6 lines per task: context, gold ending index (0-3), then the four endings",
    );
  }
  const total = lines.length / 6;
  const tasks = hellaswagOrder(total, count).map((index): HellaswagTask => {
    const at = index * 6;
    const goldLine = lines[at + 1]!;
    // std::stoi: leading whitespace and trailing text are accepted.
    const match = /^\s*([+-]?\d+)/.exec(goldLine);
    const gold = match ? Number(match[1]) : Number.NaN;
    if (!(gold >= 0 && gold <= 3)) {
      throw new UsageError(`${source} line ${at + 2}: expected the gold ending's index (0-3), got "${truncate(goldLine)}"`, "HellaSwag files hold 6 lines per task: context, gold index, four endings");
    }
    return { kind: "hellaswag", index, context: lines[at]!, gold, endings: [lines[at + 2]!, lines[at + 3]!, lines[at + 4]!, lines[at + 5]!] };
  });
  return { tasks, available: total, selection: "shuffled (mt19937 seed 1)", skipped: [] };
}

/**
 * Winogrande CSV (index,sentence,option1,option2,answer), read as load_winogrande_from_csv reads it:
 * the first four commas outside quotes split the fields, lines that do not parse are skipped with a
 * message, and the file's last line is not used (llama.cpp's reader stops at the end of file
 * before keeping a line that has no newline after it, and -f drops the file's final newline).
 */
export function parseWinogrande(text: string, source: string, count: number | undefined): Selection<WinograndeTask> {
  const body = dropTrailingNewline(text);
  const pieces = body.split("\n");
  // getline sets eof on a last piece without '\n' after it: that line is dropped.
  pieces.pop();
  const data: WinograndeTask[] = [];
  const skipped: string[] = [];
  pieces.forEach((line, i) => {
    const lineNo = i + 1;
    // The published CSV's header: llama.cpp skips it as a bad line; not worth a warning.
    if (lineNo === 1 && line.startsWith("index,sentence,")) return;
    const commas: number[] = [];
    let quoted = false;
    for (let k = 0; k < line.length && commas.length < 4; k++) {
      const ch = line[k];
      if (!quoted) {
        if (ch === ",") commas.push(k);
        else if (ch === '"') quoted = true;
      } else if (ch === '"') quoted = false;
    }
    if (commas.length !== 4) {
      skipped.push(`line ${lineNo}: expected 5 comma-separated fields (index,sentence,option1,option2,answer), found ${commas.length + 1}`);
      return;
    }
    const [c0, c1, c2, c3] = commas as [number, number, number, number];
    const sentence = line[c0 + 1] === '"' ? line.substring(c0 + 2, c0 + 2 + (c1 - c0 - 3)) : line.substring(c0 + 1, c1);
    const where = sentence.indexOf("_");
    if (where < 0) {
      skipped.push(`line ${lineNo}: the sentence has no "_" to fill in`);
      return;
    }
    const answerText = line.substring(c3 + 1);
    // istringstream >> int: leading whitespace, then an integer prefix.
    const match = /^\s*([+-]?\d+)/.exec(answerText);
    const answer = match ? Number(match[1]) : Number.NaN;
    if (!(answer === 1 || answer === 2)) {
      skipped.push(`line ${lineNo}: expected the answer 1 or 2, got "${truncate(answerText)}"`);
      return;
    }
    data.push({
      kind: "winogrande",
      index: data.length,
      first: sentence.substring(0, where),
      second: sentence.substring(where + 1),
      choices: [line.substring(c1 + 1, c2), line.substring(c2 + 1, c3)],
      answer,
    });
  });
  if (data.length === 0) {
    throw new UsageError(
      `${source} holds no Winogrande tasks${skipped.length > 0 ? ` (${skipped[0]})` : ""}`,
      "Give lines index,sentence with _,option1,option2,answer (1 or 2), e.g. llama.cpp's winogrande-debiased-eval.csv",
    );
  }
  if (count !== undefined && count > 0 && count < data.length) {
    return { tasks: pickWithoutReplacement(data.length, count).map((i) => data[i]!), available: data.length, selection: "random subset (mt19937 seed 1)", skipped };
  }
  return { tasks: data, available: data.length, selection: "all, in file order", skipped };
}

/** A reader over llama.cpp's binary multiple-choice file (little-endian uint32 counts and lengths). */
class Reader {
  offset: number;
  private readonly view: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    offset: number,
  ) {
    this.offset = offset;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u32(): number | undefined {
    if (this.offset + 4 > this.bytes.length) return undefined;
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }
  i32(): number | undefined {
    if (this.offset + 4 > this.bytes.length) return undefined;
    const v = this.view.getInt32(this.offset, true);
    this.offset += 4;
    return v;
  }
  string(): string | undefined {
    const size = this.u32();
    if (size === undefined || this.offset + size > this.bytes.length) return undefined;
    const s = new TextDecoder().decode(this.bytes.subarray(this.offset, this.offset + size));
    this.offset += size;
    return s;
  }
}

function readAnswers(reader: Reader): { answers: string[]; labels: number[] } | string {
  const n = reader.u32();
  if (n === undefined) return "the answer count is cut off";
  if (n > 100) return `an answer count of ${n} (at most 100)`;
  const answers: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = reader.string();
    if (a === undefined) return `answer ${i + 1} of ${n} is cut off`;
    answers.push(a);
  }
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const l = reader.i32();
    if (l === undefined) return "the labels are cut off";
    labels.push(l);
  }
  return { answers, labels };
}

function readMcTask(bytes: Uint8Array, offset: number, index: number): McTask | string {
  const reader = new Reader(bytes, offset);
  const question = reader.string();
  if (question === undefined) return "the question is cut off";
  const mc1 = readAnswers(reader);
  if (typeof mc1 === "string") return `mc1: ${mc1}`;
  const mc2 = readAnswers(reader);
  if (typeof mc2 === "string") return `mc2: ${mc2}`;
  if (question === "" || mc1.answers.length === 0) return "empty question or no answers";
  if (mc1.answers.some((a) => a === "")) return "an empty answer";
  return { kind: "mc", index, question, answers: mc1.answers, labels: mc1.labels };
}

/**
 * The binary multiple-choice file (llama.cpp's -bf for --multiple-choice): uint32 task count, one
 * uint32 byte offset per task, then per task the question, mc1 (answers + int32 labels) and mc2.
 * All tasks are read in order; a subset is picked by offset with the float-scaled draw.
 */
export function parseMultipleChoice(bytes: Uint8Array, source: string, count: number | undefined): Selection<McTask> {
  const head = new Reader(bytes, 0);
  const total = head.u32();
  const hint = "Give llama.cpp's binary multiple-choice format (e.g. mmlu-validation.bin, arc-easy-validation.bin)";
  if (total === undefined || total === 0) throw new UsageError(`${source} holds no tasks`, hint);
  if (4 + 4 * total > bytes.length) throw new UsageError(`${source} is not a multiple-choice file: it claims ${total} tasks but is ${bytes.length} bytes long`, hint);
  const positions: number[] = [];
  for (let i = 0; i < total; i++) positions.push(head.u32()!);
  const fail = (what: string, index: number, at: number): never => {
    throw new UsageError(`${source} record ${index + 1} of ${total} (byte ${at}): ${what}`, hint);
  };
  if (count !== undefined && count > 0 && count < total) {
    const tasks = pickWithoutReplacement(total, count).map((index) => {
      const at = positions[index]!;
      const task = readMcTask(bytes, at, index);
      return typeof task === "string" ? fail(task, index, at) : task;
    });
    return { tasks, available: total, selection: "random subset (mt19937 seed 1)", skipped: [] };
  }
  const tasks: McTask[] = [];
  let offset = head.offset;
  for (let index = 0; index < total; index++) {
    const reader = new Reader(bytes, offset);
    const task = readMcTask(bytes, offset, index);
    if (typeof task === "string") fail(task, index, offset);
    tasks.push(task as McTask);
    // Advance past this record: re-read its layout to find where it ends.
    offset = recordEnd(reader);
  }
  return { tasks, available: total, selection: "all, in file order", skipped: [] };
}

function recordEnd(reader: Reader): number {
  reader.string();
  for (let part = 0; part < 2; part++) {
    const n = reader.u32()!;
    for (let i = 0; i < n; i++) reader.string();
    reader.offset += 4 * n;
  }
  return reader.offset;
}

/** Writes tasks in the binary multiple-choice format (for test fixtures and conversions). */
export function serializeMultipleChoice(tasks: Array<{ question: string; answers: string[]; labels: number[] }>): Uint8Array {
  const encoder = new TextEncoder();
  const records = tasks.map((t) => {
    const parts: Uint8Array[] = [];
    const u32 = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, v, true);
      parts.push(b);
    };
    const str = (s: string) => {
      const b = encoder.encode(s);
      u32(b.length);
      parts.push(b);
    };
    str(t.question);
    u32(t.answers.length);
    t.answers.forEach(str);
    t.labels.forEach((l) => u32(l >>> 0));
    u32(0); // mc2: no answers
    return concat(parts);
  });
  const header = new Uint8Array(4 + 4 * tasks.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, tasks.length, true);
  let at = header.length;
  records.forEach((r, i) => {
    view.setUint32(4 + 4 * i, at, true);
    at += r.length;
  });
  return concat([header, ...records]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
