/**
 * The shapes of a benchmark: what the user asked for (BenchParams), one test to run (BenchInstance)
 * and one result (BenchRecord). BenchRecord's first fields are llama-bench's JSON fields, in its order,
 * so that `-o json` from both tools can be compared key by key; lmrun's extras follow.
 */

export type FlashAttn = -1 | 0 | 1; // llama-bench: -1 auto, 0 off, 1 on

/** Every swept dimension is a list; the instances are their cartesian product (see sweep.ts). */
export interface BenchParams {
  models: string[];
  nPrompt: number[];
  nGen: number[];
  /** -pg pp,tg pairs. */
  nPg: [number, number][];
  nDepth: number[];
  nBatch: number[];
  nUbatch: number[];
  typeK: string[];
  typeV: string[];
  nThreads: number[];
  nGpuLayers: number[];
  flashAttn: FlashAttn[];
  repetitions: number;
  warmup: boolean;
}

/** One test: a model and one value of every parameter. */
export interface BenchInstance {
  model: string;
  nPrompt: number;
  nGen: number;
  nDepth: number;
  nBatch: number;
  nUbatch: number;
  typeK: string;
  typeV: string;
  nThreads: number;
  nGpuLayers: number;
  flashAttn: FlashAttn;
}

/** What the engine knows about a loaded model and the machine, for the record. */
export interface BenchModelInfo {
  /** llama_model_desc: "llama ?B Q8_0". */
  modelType: string;
  modelSize: number;
  modelNParams: number;
  sha256: string | null;
}

export interface BenchSystemInfo {
  buildCommit: string;
  buildNumber: number;
  cpuInfo: string;
  gpuInfo: string;
  /** llama-bench's backend string: "CPU", "CUDA", "Vulkan", "Metal". */
  backends: string;
  cpuCores: number;
  ramBytes: number;
  nodeLlamaCppVersion: string;
  llamaCppRelease: string;
  lmrunVersion: string;
  platform: string;
}

/** One row of results. */
export interface BenchRecord {
  build_commit: string;
  build_number: number;
  cpu_info: string;
  gpu_info: string;
  backends: string;
  model_filename: string;
  model_type: string;
  model_size: number;
  model_n_params: number;
  n_batch: number;
  n_ubatch: number;
  n_threads: number;
  cpu_mask: string;
  cpu_strict: boolean;
  poll: number;
  type_k: string;
  type_v: string;
  n_gpu_layers: number;
  n_cpu_moe: number;
  split_mode: string;
  main_gpu: number;
  no_kv_offload: boolean;
  flash_attn: number;
  devices: string;
  tensor_split: string;
  tensor_buft_overrides: string;
  load_mode: string;
  lazy_mode: string;
  embeddings: boolean;
  no_op_offload: number;
  no_host: boolean;
  fit_target: number;
  fit_min_ctx: number;
  n_prompt: number;
  n_gen: number;
  n_depth: number;
  test_time: string;
  avg_ns: number;
  stddev_ns: number;
  avg_ts: number;
  stddev_ts: number;
  samples_ns: number[];
  samples_ts: number[];
  /** lmrun's additions. */
  lmrun: {
    model_sha256: string | null;
    peak_rss_bytes: number | null;
    peak_vram_bytes: number | null;
    decode_path: "direct" | "public" | "sync";
    system: {
      cpu: string;
      cpu_cores: number;
      ram_bytes: number;
      backend: string;
      gpu: string;
      node_llama_cpp: string;
      llama_cpp_release: string;
      lmrun: string;
      platform: string;
    };
  };
}

/** End-to-end figures for --prompt-file, measured through the same path as `lmrun run`. */
export interface PromptFileRecord {
  model_filename: string;
  n_threads: number;
  prompt_tokens: number;
  generated_tokens: number;
  ttft_ms: number[];
  prompt_ts: number[];
  gen_ts: number[];
  avg_ttft_ms: number;
  stddev_ttft_ms: number;
  avg_prompt_ts: number;
  stddev_prompt_ts: number;
  avg_gen_ts: number;
  stddev_gen_ts: number;
}

export type OutputFormat = "md" | "csv" | "json" | "jsonl";
