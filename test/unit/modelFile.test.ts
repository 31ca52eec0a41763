import { describe, expect, it } from "vitest";
import { isAbort } from "../../src/bench/runBench.js";
import { checkVocabulary, missingByteTokens } from "../../src/engine/modelFile.js";

const byteTokens = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);

describe("checkVocabulary (SentencePiece byte tokens)", () => {
  it("accepts a vocabulary with all 256 byte tokens", () => {
    expect(missingByteTokens(["<unk>", "<s>", "</s>", ...byteTokens, "▁the"])).toEqual([]);
    expect(() => checkVocabulary({ tokenizer: { ggml: { model: "llama", tokens: ["<unk>", ...byteTokens] } } }, "m.gguf")).not.toThrow();
  });

  it("counts an ASCII byte spelled as the character itself, as llama.cpp's byte_to_token does, but not a high byte", () => {
    const withoutA = byteTokens.filter((t) => t !== "<0x61>" && t !== "<0xE9>");
    expect(missingByteTokens([...withoutA, "a", "\u00e9"])).toEqual(["<0xE9>"]);
  });

  it("names what is missing, in one line", () => {
    const tokens = ["<unk>", "<s>", "</s>", ...byteTokens.slice(16)];
    expect(() => checkVocabulary({ tokenizer: { ggml: { model: "llama", tokens } } }, "broken.gguf")).toThrow(
      /^broken.gguf has a SentencePiece vocabulary without its byte tokens \(16 of the 256, e.g. <0x00>, are missing\)/,
    );
  });

  it("leaves other tokenizers alone (BPE vocabularies spell bytes differently)", () => {
    expect(() => checkVocabulary({ tokenizer: { ggml: { model: "gpt2", tokens: ["a", "b"] } } }, "bpe.gguf")).not.toThrow();
    expect(() => checkVocabulary(undefined, "none.gguf")).not.toThrow();
  });
});

describe("isAbort", () => {
  it("is a cancellation only when the signal fired or the error is an AbortError", () => {
    const idle = new AbortController().signal;
    expect(isAbort(new Error("this makes llama.cpp abort"), idle)).toBe(false);
    expect(isAbort(Object.assign(new Error("stopped"), { name: "AbortError" }), idle)).toBe(true);
    const fired = new AbortController();
    fired.abort();
    expect(isAbort(new Error("anything"), fired.signal)).toBe(true);
  });
});
