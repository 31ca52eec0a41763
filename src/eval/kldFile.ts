import fs from "node:fs/promises";
import path from "node:path";
import { LmrunError } from "../errors.js";
import { kldRowSlots } from "./math.js";

/**
 * llama-perplexity's --kl-divergence-base file, byte for byte (little-endian):
 *   "_logits_", int32 n_ctx, int32 n_vocab, int32 n_chunk, int32 tokens[n_chunk * n_ctx],
 *   then per chunk (n_ctx - 1 - n_ctx/2) rows of kldRowSlots(n_vocab) uint16
 *   (float scale, float min log-prob, then the quantised log-probabilities).
 * Files written by either tool are read by the other.
 */
export const KLD_MAGIC = "_logits_";
const HEADER_BYTES = 8 + 3 * 4;

export interface KldFileHeader {
  ctx: number;
  vocabSize: number;
  chunks: number;
  tokens: Uint32Array;
}

export function scoredPerChunk(ctx: number): number {
  return ctx - 1 - Math.floor(ctx / 2);
}

export function kldFileSize(ctx: number, vocabSize: number, chunks: number): number {
  return HEADER_BYTES + 4 * chunks * ctx + chunks * scoredPerChunk(ctx) * kldRowSlots(vocabSize) * 2;
}

export class KldBaseWriter {
  private constructor(private readonly handle: fs.FileHandle, readonly file: string) {}

  static async create(file: string, header: KldFileHeader): Promise<KldBaseWriter> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, "w");
    } catch (error) {
      throw new LmrunError(`cannot write the KL-divergence base file ${file}: ${(error as Error).message}`, {
        hint: "Check that its folder exists and is writable",
      });
    }
    const head = Buffer.alloc(HEADER_BYTES);
    head.write(KLD_MAGIC, 0, "latin1");
    head.writeInt32LE(header.ctx, 8);
    head.writeInt32LE(header.vocabSize, 12);
    head.writeInt32LE(header.chunks, 16);
    const tokens = header.tokens.subarray(0, header.chunks * header.ctx);
    await handle.write(head);
    await handle.write(Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength));
    return new KldBaseWriter(handle, file);
  }

  async writeRows(rows: Uint16Array): Promise<void> {
    await this.handle.write(Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength));
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export class KldBaseReader {
  private nextChunk = 0;
  private position: number;
  private constructor(
    private readonly handle: fs.FileHandle,
    readonly file: string,
    readonly header: KldFileHeader,
  ) {
    this.position = HEADER_BYTES + 4 * header.chunks * header.ctx;
  }

  /** Opens and validates the whole file's shape before any compute: magic, header and exact size. */
  static async open(file: string): Promise<KldBaseReader> {
    const name = path.basename(file);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, "r");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") {
        throw new LmrunError(`KL-divergence base file not found: ${file}`, {
          hint: "Make one first with: lmrun perplexity BASE_MODEL -f TEXT --kl-divergence-base FILE",
        });
      }
      throw new LmrunError(`cannot read the KL-divergence base file ${file}: ${(error as Error).message}`);
    }
    try {
      const { size } = await handle.stat();
      const head = Buffer.alloc(HEADER_BYTES);
      const { bytesRead } = await handle.read(head, 0, HEADER_BYTES, 0);
      if (bytesRead < HEADER_BYTES || head.toString("latin1", 0, 8) !== KLD_MAGIC) {
        throw new LmrunError(`${name} is not a KL-divergence base file (no "${KLD_MAGIC}" header)`, {
          hint: "Give a file written by --kl-divergence-base (lmrun's or llama-perplexity's)",
        });
      }
      const ctx = head.readInt32LE(8);
      const vocabSize = head.readInt32LE(12);
      const chunks = head.readInt32LE(16);
      if (ctx < 4 || vocabSize < 1 || chunks < 1) {
        throw new LmrunError(`${name} has an impossible header (ctx ${ctx}, vocabulary ${vocabSize}, chunks ${chunks})`);
      }
      const expected = kldFileSize(ctx, vocabSize, chunks);
      if (size !== expected) {
        throw new LmrunError(
          `${name} is ${size < expected ? "truncated" : "longer than its header says"}: ${size} bytes, expected ${expected} for ${chunks} chunks of ${ctx} tokens and a ${vocabSize}-token vocabulary`,
          { hint: "Write it again with --kl-divergence-base" },
        );
      }
      const tokenBytes = Buffer.alloc(4 * chunks * ctx);
      await handle.read(tokenBytes, 0, tokenBytes.length, HEADER_BYTES);
      const tokens = new Uint32Array(tokenBytes.buffer, tokenBytes.byteOffset, chunks * ctx).slice();
      return new KldBaseReader(handle, file, { ctx, vocabSize, chunks, tokens });
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The next chunk's stored rows, in file order. */
  async readChunk(): Promise<Uint16Array> {
    const { ctx, vocabSize } = this.header;
    const rows = new Uint16Array(scoredPerChunk(ctx) * kldRowSlots(vocabSize));
    const bytes = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
    const { bytesRead } = await this.handle.read(bytes, 0, bytes.length, this.position);
    if (bytesRead !== bytes.length) throw new LmrunError(`${path.basename(this.file)}: short read in chunk ${this.nextChunk + 1}`);
    this.position += bytes.length;
    this.nextChunk += 1;
    return rows;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
