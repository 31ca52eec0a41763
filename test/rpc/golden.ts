import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * Reference values for the RPC tests, made once with llama.cpp's own tools built from the same source
 * (`npm run llama-tools`: llama-completion, llama-perplexity, GGML_RPC=ON) against two workers on
 * 127.0.0.1, so that the comparison also runs where those tools are not built. How they were made:
 * `node scripts/rpc-golden.mjs` (prints this object), on 2026-12-06 with llama.cpp de3ff81 (v0.5.0).
 * For the record: the same perplexity with lmrun --rpc was 445.1222, and with lmrun --gpu cpu 445.2493
 * (the local CPU backend repacks Q8_0 weights; a worker keeps them plain, as llama-perplexity --rpc does).
 */
const STORY_WORDS = ["the", "little", "dog", "ran", "to", "a", "big", "tree", "and", "saw", "bird", "who", "was", "happy", "sun", "day", "girl", "named", "Lily", "played", "with", "her", "friend", "in", "park"];

/** A deterministic text of about 4,000 words for perplexity (the tiny model is a TinyStories model). */
export function perplexityTextContent(): string {
  let state = 12345;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % STORY_WORDS.length;
  };
  const sentences: string[] = [];
  for (let i = 0; i < 500; i++) {
    const words = Array.from({ length: 8 }, () => STORY_WORDS[next()]!);
    sentences.push(words.join(" ") + ".");
  }
  return sentences.join(" ") + "\n";
}

let textFile: string | undefined;

export const GOLDEN = {
  /** `llama-completion -m stories260K-Q8_0.gguf -p "Once upon a time" -n 48 --temp 0 --rpc A,B -ngl 99` (the continuation). */
  runText: ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it,\n\n",
  /** `llama-perplexity -m stories260K-Q8_0.gguf -f <perplexityText> -c 128 --rpc A,B -ngl 99`: the Final estimate. */
  perplexity: 445.1224,
  perplexityText(): string {
    if (textFile === undefined) {
      textFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-rpc-ppl-")), "story.txt");
      fs.writeFileSync(textFile, perplexityTextContent());
    }
    return textFile;
  },
};
