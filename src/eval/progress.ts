import { formatChunkProgress, formatEta } from "./format.js";
import type { ChunkEvent, EvaluatedModel } from "./types.js";

/**
 * llama-perplexity's progress: a "seconds per pass - ETA" line after the first pass, then
 * `[1]x,[2]y,…` on one line. `write` is undefined when progress is off (not a terminal, CI, --quiet).
 */
export function createPerplexityProgress(write: ((text: string) => void) | undefined) {
  let lineOpen = false;
  const put = (text: string) => write?.(text);
  return {
    start(model: EvaluatedModel, chunks: number): void {
      if (lineOpen) put("\n");
      put(`${model.fileName}: ${chunks} chunks\n`);
      lineOpen = false;
    },
    chunk(e: ChunkEvent): void {
      // A pass's chunks all report when it ends, so at chunk 1 the elapsed time is the first pass's.
      if (e.chunk === 1) put(`${formatEta(e.elapsedMs / 1000, Math.ceil(e.chunks / e.chunksPerPass))}\n`);
      put(formatChunkProgress(e.chunk, e.ppl));
      lineOpen = true;
    },
    end(): void {
      if (lineOpen) put("\n");
      lineOpen = false;
    },
  };
}
