import fs from "node:fs";

/**
 * A tiny GGUF v3 writer (F32 tensors only) and a one-layer llama built with it whose next-token
 * distribution is known in closed form, as a test oracle independent of llama.cpp:
 *
 * - one-hot token embeddings (n_embd >= n_vocab), so the hidden state is e_t;
 * - all attention and FFN weights zero, so the layer adds nothing to the residual stream;
 * - output_norm weight 1, so the final hidden state is e_t / sqrt(1/n_embd + eps) (RMS norm);
 * - output.weight holding a table L, so the logits at a position whose token is t are
 *   rmsScale(n_embd, eps) * L[t][j]: a bigram model, whatever came earlier.
 */

type GgufValue =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "strings"; value: string[] }
  | { type: "f32s"; value: number[] }
  | { type: "i32s"; value: number[] };

interface Tensor {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (row length). */
  dims: number[];
  data: Float32Array;
}

const ALIGNMENT = 32;

class ByteSink {
  private parts: Buffer[] = [];
  length = 0;
  push(buffer: Buffer): void {
    this.parts.push(buffer);
    this.length += buffer.length;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string) {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  pad(to: number) {
    const extra = (to - (this.length % to)) % to;
    if (extra > 0) this.push(Buffer.alloc(extra));
  }
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// GGUF metadata value types.
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

export function writeGguf(file: string, metadata: Record<string, GgufValue>, tensors: Tensor[]): void {
  const out = new ByteSink();
  out.push(Buffer.from("GGUF", "latin1"));
  out.u32(3);
  out.u64(tensors.length);
  out.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    out.str(key);
    switch (v.type) {
      case "u32":
        out.u32(T.u32);
        out.u32(v.value);
        break;
      case "i32":
        out.u32(T.i32);
        out.i32(v.value);
        break;
      case "f32":
        out.u32(T.f32);
        out.f32(v.value);
        break;
      case "bool":
        out.u32(T.bool);
        out.push(Buffer.from([v.value ? 1 : 0]));
        break;
      case "string":
        out.u32(T.string);
        out.str(v.value);
        break;
      case "strings":
        out.u32(T.array);
        out.u32(T.string);
        out.u64(v.value.length);
        for (const s of v.value) out.str(s);
        break;
      case "f32s":
        out.u32(T.array);
        out.u32(T.f32);
        out.u64(v.value.length);
        for (const x of v.value) out.f32(x);
        break;
      case "i32s":
        out.u32(T.array);
        out.u32(T.i32);
        out.u64(v.value.length);
        for (const x of v.value) out.i32(x);
        break;
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += Math.ceil(t.data.byteLength / ALIGNMENT) * ALIGNMENT;
  }
  tensors.forEach((t, i) => {
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(0); // GGML_TYPE_F32
    out.u64(offsets[i]!);
  });
  out.pad(ALIGNMENT);
  for (const t of tensors) {
    out.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    out.pad(ALIGNMENT);
  }
  fs.writeFileSync(file, out.concat());
}

/** The factor RMS norm applies to a one-hot vector of width nEmbd. */
export function rmsScale(nEmbd: number, eps: number): number {
  return 1 / Math.sqrt(1 / nEmbd + eps);
}

export interface BigramLlama {
  /** Token strings, SentencePiece style: "▁" is the space. Ids 0-2 are <unk>, <s>, </s>, then the 256 byte tokens. */
  tokens: string[];
  /** logitTable[t][j]: the logit of j after t, before the RMS-norm scale. */
  logitTable: number[][];
  nEmbd: number;
  eps: number;
}

/** Writes the bigram llama described above for the given letters (single characters). */
export function writeBigramLlama(
  file: string,
  letters: string[],
  logit: (current: number, next: number) => number,
  options: {
    byteTokens?: boolean;
    /** Control tokens after the letters (a chat template's markers such as "<|im_start|>"). */
    specials?: string[];
    /** Those of the specials that are user-defined tokens, shown in text as llama.cpp detokenizes (Qwen3's <think>). */
    userDefined?: string[];
    chatTemplate?: string;
    /** "qwen3" writes the same bigram model as a Qwen3 (per-head Q/K norms, which a zero attention leaves inert). */
    architecture?: "llama" | "qwen3";
  } = {},
): BigramLlama {
  // Byte-fallback tokens as real SentencePiece vocabularies have: node-llama-cpp tokenises probe strings at load.
  // (byteTokens: false writes a broken vocabulary without them, for the error path.)
  const bytes = options.byteTokens === false ? [] : Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const specials = options.specials ?? [];
  const tokens = ["<unk>", "<s>", "</s>", ...bytes, "\u2581", ...letters, ...specials];
  const types = [2, 3, 3, ...bytes.map(() => 6), 1, ...letters.map(() => 1), ...specials.map((s) => (options.userDefined?.includes(s) ? 4 : 3))];
  const nVocab = tokens.length;
  const nEmbd = Math.ceil(nVocab / 16) * 16;
  const nFf = 16;
  const eps = 1e-5;
  const logitTable = tokens.map((_, t) => tokens.map((__, j) => logit(t, j)));

  const zeros = (n: number) => new Float32Array(n);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const embedding = zeros(nEmbd * nVocab);
  for (let t = 0; t < nVocab; t++) embedding[t * nEmbd + t] = 1;
  // output.weight rows are per output token j: row j holds L[t][j] at column t.
  const output = zeros(nEmbd * nVocab);
  for (let j = 0; j < nVocab; j++) for (let t = 0; t < nVocab; t++) output[j * nEmbd + t] = logitTable[t]![j]!;

  const arch = options.architecture ?? "llama";
  const headDim = nEmbd / 2;
  writeGguf(
    file,
    {
      "general.architecture": { type: "string", value: arch },
      "general.name": { type: "string", value: "bigram oracle" },
      "general.alignment": { type: "u32", value: ALIGNMENT },
      "general.file_type": { type: "u32", value: 0 },
      [`${arch}.context_length`]: { type: "u32", value: 1024 },
      [`${arch}.embedding_length`]: { type: "u32", value: nEmbd },
      [`${arch}.block_count`]: { type: "u32", value: 1 },
      [`${arch}.feed_forward_length`]: { type: "u32", value: nFf },
      [`${arch}.attention.head_count`]: { type: "u32", value: 2 },
      [`${arch}.attention.head_count_kv`]: { type: "u32", value: 2 },
      [`${arch}.rope.dimension_count`]: { type: "u32", value: headDim },
      [`${arch}.attention.layer_norm_rms_epsilon`]: { type: "f32", value: eps },
      "tokenizer.ggml.model": { type: "string", value: "llama" },
      "tokenizer.ggml.tokens": { type: "strings", value: tokens },
      "tokenizer.ggml.scores": { type: "f32s", value: tokens.map(() => 0) },
      "tokenizer.ggml.token_type": { type: "i32s", value: types },
      "tokenizer.ggml.unknown_token_id": { type: "u32", value: 0 },
      "tokenizer.ggml.bos_token_id": { type: "u32", value: 1 },
      "tokenizer.ggml.eos_token_id": { type: "u32", value: 2 },
      "tokenizer.ggml.add_bos_token": { type: "bool", value: true },
      "tokenizer.ggml.add_eos_token": { type: "bool", value: false },
      ...(options.chatTemplate !== undefined ? { "tokenizer.chat_template": { type: "string" as const, value: options.chatTemplate } } : {}),
    },
    [
      { name: "token_embd.weight", dims: [nEmbd, nVocab], data: embedding },
      { name: "output_norm.weight", dims: [nEmbd], data: ones(nEmbd) },
      { name: "output.weight", dims: [nEmbd, nVocab], data: output },
      { name: "blk.0.attn_norm.weight", dims: [nEmbd], data: ones(nEmbd) },
      { name: "blk.0.attn_q.weight", dims: [nEmbd, nEmbd], data: zeros(nEmbd * nEmbd) },
      { name: "blk.0.attn_k.weight", dims: [nEmbd, nEmbd], data: zeros(nEmbd * nEmbd) },
      { name: "blk.0.attn_v.weight", dims: [nEmbd, nEmbd], data: zeros(nEmbd * nEmbd) },
      { name: "blk.0.attn_output.weight", dims: [nEmbd, nEmbd], data: zeros(nEmbd * nEmbd) },
      ...(arch === "qwen3"
        ? [
            { name: "blk.0.attn_q_norm.weight", dims: [headDim], data: ones(headDim) },
            { name: "blk.0.attn_k_norm.weight", dims: [headDim], data: ones(headDim) },
          ]
        : []),
      { name: "blk.0.ffn_norm.weight", dims: [nEmbd], data: ones(nEmbd) },
      { name: "blk.0.ffn_gate.weight", dims: [nEmbd, nFf], data: zeros(nEmbd * nFf) },
      { name: "blk.0.ffn_up.weight", dims: [nEmbd, nFf], data: zeros(nEmbd * nFf) },
      { name: "blk.0.ffn_down.weight", dims: [nFf, nEmbd], data: zeros(nFf * nEmbd) },
    ],
  );
  return { tokens, logitTable, nEmbd, eps };
}
