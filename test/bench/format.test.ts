import { describe, expect, it } from "vitest";
import { createPrinter, csvHeader, formatG6, formatModelSize, formatParams, LLAMA_BENCH_FIELDS, markdownFields, markdownHeader, markdownRow } from "../../src/bench/format.js";
import { toRecord } from "../../src/bench/runBench.js";
import type { BenchInstance, BenchRecord, BenchSystemInfo } from "../../src/bench/types.js";

const system: BenchSystemInfo = {
  buildCommit: "de3ff81",
  buildNumber: 1,
  cpuInfo: "AMD EPYC",
  gpuInfo: "",
  backends: "CPU",
  cpuCores: 2,
  ramBytes: 1,
  nodeLlamaCppVersion: "3.22.1",
  llamaCppRelease: "v0.5.0",
  lmrunVersion: "0.1.0",
  platform: "linux",
};

function record(overrides: Partial<BenchInstance> & { avg: number; sd: number }, model = { modelType: "llama ?B Q8_0", modelSize: 364768, modelNParams: 292800 }): BenchRecord {
  const instance: BenchInstance = {
    model: "m.gguf",
    nPrompt: 0,
    nGen: 0,
    nDepth: 0,
    nBatch: 2048,
    nUbatch: 512,
    typeK: "f16",
    typeV: "f16",
    nThreads: 1,
    nGpuLayers: -1,
    flashAttn: -1,
    ...overrides,
  };
  const r = toRecord(instance, { displayName: "m.gguf", path: "/m.gguf", sha256: "ab".repeat(32) }, model, system, [1e9, 1e9], "2026-11-25T14:49:55Z", {
    peakRss: 1,
    peakVram: null,
    decodePath: "direct",
  });
  return { ...r, avg_ts: overrides.avg, stddev_ts: overrides.sd };
}

// Copied from llama-bench (built from node-llama-cpp's llama.cpp, de3ff81) on the same model.
const LLAMA_BENCH_MD = `| model                          |       size |     params | backend    | threads |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |
| llama ?B Q8_0                  |   0.35 MiB |     0.29 M | CPU        |       1 |           pp512 |      1983.98 ± 36.46 |
| llama ?B Q8_0                  |   0.35 MiB |     0.29 M | CPU        |       1 |           tg128 |      5547.24 ± 40.00 |

build: de3ff81 (1)
`;

// llama.cpp tools/llama-bench/README.md (a CUDA run with -d 0,512).
const LLAMA_BENCH_README_MD = `| model                          |       size |     params | backend    | ngl |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | --------------: | -------------------: |
| qwen2 7B Q4_K - Medium         |   4.36 GiB |     7.62 B | CUDA       |  -1 |    pp512 @ d512 |      6425.91 ± 18.88 |
`;

const LLAMA_BENCH_CSV_HEADER =
  "build_commit,build_number,cpu_info,gpu_info,backends,model_filename,model_type,model_size,model_n_params,n_batch,n_ubatch,n_threads,cpu_mask,cpu_strict,poll,type_k,type_v,n_gpu_layers,n_cpu_moe,split_mode,main_gpu,no_kv_offload,flash_attn,devices,tensor_split,tensor_buft_overrides,load_mode,lazy_mode,embeddings,no_op_offload,no_host,fit_target,fit_min_ctx,n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts";

describe("markdown, as llama-bench prints it", () => {
  it("matches llama-bench's table byte for byte", () => {
    const printer = createPrinter("md", { sweptColumns: ["n_threads"], buildCommit: "de3ff81", buildNumber: 1 });
    const text =
      printer.header() + printer.row(record({ nPrompt: 512, avg: 1983.98, sd: 36.46 })) + printer.row(record({ nGen: 128, avg: 5547.24, sd: 40.0 })) + printer.footer(null);
    expect(text).toBe(LLAMA_BENCH_MD);
  });

  it("matches the README's GPU example: ngl column, GiB/B units, depth suffix", () => {
    const fields = markdownFields(["n_gpu_layers"]);
    const qwen = { modelType: "qwen2 7B Q4_K - Medium", modelSize: Math.round(4.36 * 1024 ** 3), modelNParams: 7.62e9 };
    const row = markdownRow(fields, { ...record({ nPrompt: 512, nDepth: 512, avg: 6425.91, sd: 18.88 }, qwen), backends: "CUDA" });
    expect(markdownHeader(fields) + row).toBe(LLAMA_BENCH_README_MD);
  });

  it("size and params units", () => {
    expect(formatModelSize(364768)).toBe("0.35 MiB");
    expect(formatModelSize(2 * 1024 ** 3)).toBe("2.00 GiB");
    expect(formatParams(134_515_008)).toBe("134.52 M");
    expect(formatParams(1.5e9)).toBe("1.50 B");
  });

  it("marks an interrupted run as partial after the build line", () => {
    const printer = createPrinter("md", { sweptColumns: ["n_threads"], buildCommit: "de3ff81", buildNumber: 1 });
    expect(printer.footer({ done: 1, planned: 2 })).toBe("\nbuild: de3ff81 (1)\npartial: interrupted after 1 of 2 tests\n");
  });
});

describe("csv, json and jsonl", () => {
  const rows = [record({ nPrompt: 512, avg: 1983.98, sd: 36.46 }), record({ nGen: 128, avg: 5547.24, sd: 40 })];

  it("csv: llama-bench's header and quoting, lmrun's extras after it", () => {
    const printer = createPrinter("csv", { sweptColumns: [], buildCommit: "de3ff81", buildNumber: 1 });
    const text = printer.header() + rows.map((r) => printer.row(r)).join("") + printer.footer(null);
    const lines = text.trimEnd().split("\n");
    expect(csvHeader().startsWith(LLAMA_BENCH_CSV_HEADER + ",")).toBe(true);
    expect(lines).toHaveLength(3);
    const header = lines[0]!.split(",");
    const cells = lines[1]!.slice(1, -1).split('","');
    expect(cells).toHaveLength(header.length);
    const row = Object.fromEntries(header.map((h, i) => [h, cells[i]]));
    expect(row).toMatchObject({ build_commit: "de3ff81", model_type: "llama ?B Q8_0", n_prompt: "512", n_gen: "0", cpu_strict: "0", avg_ts: "1983.980000", model_sha256: "ab".repeat(32) });
  });

  it("json: an array whose records carry llama-bench's fields in its order, samples, and lmrun's extras", () => {
    const printer = createPrinter("json", { sweptColumns: [], buildCommit: "de3ff81", buildNumber: 1 });
    const text = printer.header() + rows.map((r) => printer.row(r)).join("") + printer.footer(null);
    const parsed = JSON.parse(text) as Record<string, unknown>[];
    expect(parsed).toHaveLength(2);
    expect(Object.keys(parsed[0]!)).toEqual([...LLAMA_BENCH_FIELDS.map(([f]) => f), "samples_ns", "samples_ts", "lmrun"]);
    expect(parsed[1]).toMatchObject({ n_prompt: 0, n_gen: 128, n_threads: 1, cpu_strict: false, avg_ts: 5547.24, samples_ns: [1e9, 1e9], samples_ts: [128, 128] });
    expect(parsed[1]!.lmrun).toMatchObject({ model_sha256: "ab".repeat(32), decode_path: "direct", system: { node_llama_cpp: "3.22.1", llama_cpp_release: "v0.5.0" } });
    expect(text).toContain('    "avg_ts": 5547.240000,\n');
  });

  it("jsonl: one parseable object per line", () => {
    const printer = createPrinter("jsonl", { sweptColumns: [], buildCommit: "de3ff81", buildNumber: 1 });
    const lines = rows.map((r) => printer.row(r)).join("").trimEnd().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { n_prompt: number }).n_prompt)).toEqual([512, 0]);
    expect(JSON.parse(printer.footer({ done: 1, planned: 3 }))).toEqual({ partial: true, done: 1, planned: 3 });
  });

  it("samples_ts as C++ streams print doubles (6 significant digits)", () => {
    expect(formatG6(31.008412)).toBe("31.0084");
    expect(formatG6(16590.123)).toBe("16590.1");
    expect(formatG6(9923.0099)).toBe("9923.01");
    expect(formatG6(128)).toBe("128");
    expect(formatG6(1234567)).toBe("1.23457e+06");
    expect(formatG6(0.000012345)).toBe("1.2345e-05");
    expect(formatG6(999999.7)).toBe("1e+06");
  });
});
