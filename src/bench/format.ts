import { mean, sampleStdDev } from "./stats.js";
import { testName } from "./sweep.js";
import type { BenchRecord, OutputFormat, PromptFileRecord } from "./types.js";

/**
 * Pure printers reproducing llama-bench's output (tools/llama-bench/llama-bench.cpp: markdown_printer,
 * csv_printer, json_printer, jsonl_printer) character for character, so results can be diffed against it.
 * Each printer returns text; the caller writes it as rows finish.
 */

type FieldType = "string" | "bool" | "int" | "float";

/** llama-bench's test::get_fields(), in order, with get_field_type(). */
export const LLAMA_BENCH_FIELDS: readonly [keyof BenchRecord, FieldType][] = [
  ["build_commit", "string"],
  ["build_number", "int"],
  ["cpu_info", "string"],
  ["gpu_info", "string"],
  ["backends", "string"],
  ["model_filename", "string"],
  ["model_type", "string"],
  ["model_size", "int"],
  ["model_n_params", "int"],
  ["n_batch", "int"],
  ["n_ubatch", "int"],
  ["n_threads", "int"],
  ["cpu_mask", "string"],
  ["cpu_strict", "bool"],
  ["poll", "int"],
  ["type_k", "string"],
  ["type_v", "string"],
  ["n_gpu_layers", "int"],
  ["n_cpu_moe", "int"],
  ["split_mode", "string"],
  ["main_gpu", "int"],
  ["no_kv_offload", "bool"],
  ["flash_attn", "int"],
  ["devices", "string"],
  ["tensor_split", "string"],
  ["tensor_buft_overrides", "string"],
  ["load_mode", "string"],
  ["lazy_mode", "string"],
  ["embeddings", "bool"],
  ["no_op_offload", "int"],
  ["no_host", "bool"],
  ["fit_target", "int"],
  ["fit_min_ctx", "int"],
  ["n_prompt", "int"],
  ["n_gen", "int"],
  ["n_depth", "int"],
  ["test_time", "string"],
  ["avg_ns", "int"],
  ["stddev_ns", "int"],
  ["avg_ts", "float"],
  ["stddev_ts", "float"],
];

/** lmrun's extra CSV columns, after llama-bench's. */
const EXTRA_CSV_FIELDS = ["model_sha256", "peak_rss_bytes", "peak_vram_bytes"] as const;

/** C++ std::to_string / get_values() text of a field: bools as 0/1, floats as %f. */
function valueText(record: BenchRecord, field: keyof BenchRecord, type: FieldType): string {
  const value = record[field];
  if (type === "bool") return value ? "1" : "0";
  if (type === "float") return (value as number).toFixed(6);
  if (type === "int") return String(Math.trunc(value as number));
  return String(value);
}

/** std::ostream's default formatting of a double (%g with 6 significant digits). */
export function formatG6(value: number): string {
  if (!Number.isFinite(value)) return value > 0 ? "inf" : value < 0 ? "-inf" : "nan";
  if (value === 0) return "0";
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  const rounded = Number(value.toPrecision(6));
  const roundedExponent = Math.floor(Math.log10(Math.abs(rounded)));
  if (roundedExponent < -4 || roundedExponent >= 6 || exponent < -4) {
    const [mantissa, exp] = rounded.toExponential(5).split("e") as [string, string];
    const trimmed = mantissa.includes(".") ? mantissa.replace(/0+$/, "").replace(/\.$/, "") : mantissa;
    const sign = exp.startsWith("-") ? "-" : "+";
    const digits = exp.replace(/^[+-]/, "").padStart(2, "0");
    return `${trimmed}e${sign}${digits}`;
  }
  const text = rounded.toFixed(Math.max(0, 5 - roundedExponent));
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

function escapeJson(value: string): string {
  let out = "";
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (code <= 0x1f) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out;
}

function jsonValue(record: BenchRecord, field: keyof BenchRecord, type: FieldType): string {
  if (type === "string") return `"${escapeJson(valueText(record, field, type))}"`;
  if (type === "bool") return record[field] ? "true" : "false";
  return valueText(record, field, type);
}

// ---------------------------------------------------------------- markdown

/** markdown_printer::get_field_width: negative = left-aligned. */
function fieldWidth(field: string): number {
  switch (field) {
    case "model":
      return -30;
    case "t/s":
      return 20;
    case "size":
    case "params":
      return 10;
    case "n_gpu_layers":
    case "flash_attn":
      return 3;
    case "n_threads":
    case "n_batch":
      return 7;
    case "n_ubatch":
      return 8;
    case "type_k":
    case "type_v":
      return 6;
    case "test":
      return 15;
    default: {
      const width = Math.max(field.length, 10);
      const numeric = LLAMA_BENCH_FIELDS.some(([name, type]) => name === field && (type === "int" || type === "float"));
      return numeric ? width : -width;
    }
  }
}

const DISPLAY_NAMES: Record<string, string> = { n_gpu_layers: "ngl", n_threads: "threads", flash_attn: "fa" };

/** printf("%*s", width, text): right-aligned for positive widths, left for negative; never truncates. */
function pad(text: string, width: number): string {
  return width < 0 ? text.padEnd(-width) : text.padStart(width);
}

/** The markdown columns: model, size, params, backend, the swept/non-default ones, test, t/s. */
export function markdownFields(sweptColumns: readonly string[]): string[] {
  return ["model", "size", "params", "backend", ...sweptColumns, "test", "t/s"];
}

export function markdownHeader(fields: readonly string[]): string {
  const names = fields.map((f) => ` ${pad(DISPLAY_NAMES[f] ?? f, fieldWidth(f))} |`).join("");
  const rule = fields
    .map((f) => {
      const width = fieldWidth(f);
      return ` ${"-".repeat(Math.abs(width) - 1)}${width > 0 ? ":" : "-"} |`;
    })
    .join("");
  return `|${names}\n|${rule}\n`;
}

export function formatModelSize(bytes: number): string {
  return bytes < 1024 * 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MiB` : `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export function formatParams(count: number): string {
  return count < 1e9 ? `${(count / 1e6).toFixed(2)} M` : `${(count / 1e9).toFixed(2)} B`;
}

export function markdownRow(fields: readonly string[], record: BenchRecord): string {
  const cells = fields.map((field) => {
    let value: string;
    if (field === "model") value = record.model_type;
    else if (field === "size") value = formatModelSize(record.model_size);
    else if (field === "params") value = formatParams(record.model_n_params);
    else if (field === "backend") value = record.backends;
    else if (field === "test") value = testName({ nPrompt: record.n_prompt, nGen: record.n_gen, nDepth: record.n_depth });
    else if (field === "t/s") value = `${record.avg_ts.toFixed(2)} ± ${record.stddev_ts.toFixed(2)}`;
    else {
      const spec = LLAMA_BENCH_FIELDS.find(([name]) => name === field);
      value = spec ? valueText(record, spec[0], spec[1]) : "";
    }
    // llama-bench widens the t/s cell by one byte for the two-byte "±"; in characters it is the same width.
    return ` ${pad(value, fieldWidth(field))} |`;
  });
  return `|${cells.join("")}\n`;
}

export function markdownFooter(buildCommit: string, buildNumber: number): string {
  return `\nbuild: ${buildCommit} (${buildNumber})\n`;
}

// ---------------------------------------------------------------- csv

function escapeCsv(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}

export function csvHeader(): string {
  return [...LLAMA_BENCH_FIELDS.map(([name]) => name), ...EXTRA_CSV_FIELDS].join(",") + "\n";
}

export function csvRow(record: BenchRecord): string {
  const values = LLAMA_BENCH_FIELDS.map(([name, type]) => valueText(record, name, type));
  const extras = [record.lmrun.model_sha256 ?? "", String(record.lmrun.peak_rss_bytes ?? ""), String(record.lmrun.peak_vram_bytes ?? "")];
  return [...values, ...extras].map(escapeCsv).join(",") + "\n";
}

// ---------------------------------------------------------------- json / jsonl

export function jsonHeader(): string {
  return "[\n";
}

/** One record in json_printer's layout; `first` decides the separating ",\n". */
export function jsonRecord(record: BenchRecord, first: boolean): string {
  let out = first ? "" : ",\n";
  out += "  {\n";
  for (const [name, type] of LLAMA_BENCH_FIELDS) out += `    "${name}": ${jsonValue(record, name, type)},\n`;
  out += `    "samples_ns": [ ${record.samples_ns.join(", ")} ],\n`;
  out += `    "samples_ts": [ ${record.samples_ts.map(formatG6).join(", ")} ],\n`;
  out += `    "lmrun": ${JSON.stringify(record.lmrun)}\n`;
  out += "  }";
  return out;
}

export function jsonFooter(): string {
  return "\n]\n";
}

export function jsonlRecord(record: BenchRecord): string {
  let out = "{";
  for (const [name, type] of LLAMA_BENCH_FIELDS) out += `"${name}": ${jsonValue(record, name, type)}, `;
  out += `"samples_ns": [ ${record.samples_ns.join(", ")} ],`;
  out += `"samples_ts": [ ${record.samples_ts.map(formatG6).join(", ")} ],`;
  out += `"lmrun": ${JSON.stringify(record.lmrun)}`;
  return out + "}\n";
}

// ---------------------------------------------------------------- streaming printer

export interface BenchPrinter {
  header(): string;
  row(record: BenchRecord): string;
  /** After the last row; `partial` marks an interrupted run. */
  footer(partial: { done: number; planned: number } | null): string;
}

export function createPrinter(format: OutputFormat, options: { sweptColumns: readonly string[]; buildCommit: string; buildNumber: number }): BenchPrinter {
  switch (format) {
    case "md": {
      const fields = markdownFields(options.sweptColumns);
      return {
        header: () => markdownHeader(fields),
        row: (record) => markdownRow(fields, record),
        footer: (partial) =>
          markdownFooter(options.buildCommit, options.buildNumber) +
          (partial ? `partial: interrupted after ${partial.done} of ${partial.planned} tests\n` : ""),
      };
    }
    case "csv":
      return { header: csvHeader, row: csvRow, footer: () => "" };
    case "json": {
      let first = true;
      return {
        header: jsonHeader,
        row: (record) => {
          const text = jsonRecord(record, first);
          first = false;
          return text;
        },
        footer: () => jsonFooter(),
      };
    }
    case "jsonl":
      return {
        header: () => "",
        row: jsonlRecord,
        footer: (partial) => (partial ? JSON.stringify({ partial: true, done: partial.done, planned: partial.planned }) + "\n" : ""),
      };
  }
}

// ---------------------------------------------------------------- --prompt-file

export function summarisePromptFile(base: Omit<PromptFileRecord, "avg_ttft_ms" | "stddev_ttft_ms" | "avg_prompt_ts" | "stddev_prompt_ts" | "avg_gen_ts" | "stddev_gen_ts">): PromptFileRecord {
  return {
    ...base,
    avg_ttft_ms: mean(base.ttft_ms),
    stddev_ttft_ms: sampleStdDev(base.ttft_ms),
    avg_prompt_ts: mean(base.prompt_ts),
    stddev_prompt_ts: sampleStdDev(base.prompt_ts),
    avg_gen_ts: mean(base.gen_ts),
    stddev_gen_ts: sampleStdDev(base.gen_ts),
  };
}

/** A second table for --prompt-file: what a user of `run` feels, mean ± sd over the repetitions. */
export function promptFileTable(records: readonly PromptFileRecord[]): string {
  const header = ["model", "threads", "prompt", "gen", "ttft ms", "prompt t/s", "gen t/s"];
  const rows = records.map((r) => [
    r.model_filename,
    String(r.n_threads),
    String(r.prompt_tokens),
    String(r.generated_tokens),
    `${r.avg_ttft_ms.toFixed(2)} ± ${r.stddev_ttft_ms.toFixed(2)}`,
    `${r.avg_prompt_ts.toFixed(2)} ± ${r.stddev_prompt_ts.toFixed(2)}`,
    `${r.avg_gen_ts.toFixed(2)} ± ${r.stddev_gen_ts.toFixed(2)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |\n`;
  const rule = `| ${widths.map((w, i) => (i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ")} |\n`;
  return line(header) + rule + rows.map(line).join("");
}
