import type { LlamaModel } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { LogprobRecorder, validUtf8Prefix } from "../../src/engine/logprobs.js";

/**
 * Which sampled tokens an answer's text is made of (the engine's LogprobRecorder), on a made-up SPM
 * vocabulary: thoughts, markers, a stop text and the end-of-turn token are sampled but not the answer's.
 */

const vocabulary = ["a", "▁Hello", "▁world", "<think>", "</think>", "hm", "!", "<0xE2>", "<0x80>", "<0x99>", "</s>", "▁day", "."];
const id = (piece: string) => vocabulary.indexOf(piece);
const text = (token: number) => {
  const piece = vocabulary[token]!;
  if (/^<0x/.test(piece)) return "\uFFFD"; // a byte alone is no character (what llama.cpp's detokenizer gives)
  if (piece === "</s>") return "";
  return piece.replaceAll("▁", " ");
};
const model = {
  fileInfo: { metadata: { tokenizer: { ggml: { model: "llama", tokens: vocabulary } } } },
  tokenize: () => [id("a")],
  detokenize: (tokens: number[]) => tokens.map(text).join(""),
} as unknown as LlamaModel;

function sampled(recorder: LogprobRecorder, pieces: string[]) {
  for (const piece of pieces) recorder.sampled({ token: id(piece) as never, confidence: 0.5 });
}

const tokensOf = (list: { token: string }[]) => list.map((t) => t.token);

describe("LogprobRecorder: an answer's tokens", () => {
  it("are the tokens its text is made of, word-start spaces included, markers and thoughts left out", () => {
    const recorder = new LogprobRecorder(model, 0);
    sampled(recorder, ["<think>", "hm", "</think>", "▁Hello", "▁world", "!", "</s>"]);
    recorder.thought("hm");
    // The answer shown without its first space (a thinking model's answer is trimmed at its start).
    expect(tokensOf(recorder.answer("Hello"))).toEqual([" Hello"]);
    expect(tokensOf(recorder.answer(" world!"))).toEqual([" world", "!"]);
    expect(tokensOf(recorder.answerTokens)).toEqual([" Hello", " world", "!"]);
    expect(recorder.answerTokens[0]).toMatchObject({ id: id("▁Hello"), bytes: [32, 72, 101, 108, 108, 111], logprob: Math.log(0.5), top: [] });
  });

  it("give a character split over byte tokens its bytes, and the text only where the character is whole", () => {
    const recorder = new LogprobRecorder(model, 0);
    sampled(recorder, ["<0xE2>", "<0x80>", "<0x99>", "!"]);
    const tokens = recorder.answer("\u2019!");
    expect(tokens.map((t) => t.bytes)).toEqual([[0xe2], [0x80], [0x99], [33]]);
    expect(tokensOf(tokens)).toEqual(["", "", "", "!"]);
  });

  it("leave out a token a stop text cut (its shown part has no token), and keep one whose rest comes next", () => {
    const cut = new LogprobRecorder(model, 0);
    sampled(cut, ["▁Hello", "▁day", "</s>"]);
    expect(tokensOf(cut.answer(" Hello "))).toEqual([" Hello"]);
    expect(tokensOf(cut.answerTokens)).toEqual([" Hello"]);

    const split = new LogprobRecorder(model, 0);
    sampled(split, ["▁Hello", "▁day", "."]);
    expect(tokensOf(split.answer(" Hello "))).toEqual([" Hello"]);
    expect(tokensOf(split.answer("day."))).toEqual([" day", "."]);
  });

  it("forget what was sampled and then dropped (a first answer given up for thoughts)", () => {
    const recorder = new LogprobRecorder(model, 0);
    sampled(recorder, ["▁Hello"]);
    recorder.discardPending();
    sampled(recorder, ["▁Hello", "!"]);
    expect(recorder.answer(" Hello!").length).toBe(2);
    expect(recorder.answerTokens.length).toBe(2);
  });

  it("give the most likely tokens in the order node-llama-cpp's map has them, as many as asked", () => {
    const recorder = new LogprobRecorder(model, 2);
    expect(recorder.metadata).toEqual({ probabilities: true });
    const probabilities = new Map([
      [id("▁Hello"), 0.7],
      [id("▁world"), 0.2],
      [id("!"), 0.1],
    ]);
    recorder.sampled({ token: id("▁Hello") as never, probabilities: probabilities as never });
    const [token] = recorder.answer(" Hello");
    expect(token!.logprob).toBeCloseTo(Math.log(0.7), 12);
    expect(token!.top.map((t) => [t.token, t.logprob])).toEqual([
      [" Hello", Math.log(0.7)],
      [" world", Math.log(0.2)],
    ]);
    expect(new LogprobRecorder(model, 0).metadata).toEqual({ confidence: true });
  });

  it("writes text without an incomplete character at its end, as llama-server's validate_utf8", () => {
    expect(validUtf8Prefix(Uint8Array.of(0x61, 0xe2, 0x80))).toBe("a");
    expect(validUtf8Prefix(Uint8Array.of(0xe2, 0x80, 0x99))).toBe("\u2019");
  });
});
