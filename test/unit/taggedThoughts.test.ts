import { describe, expect, it } from "vitest";
import { TaggedThoughtSplitter } from "../../src/engine/thoughts.js";

/** A plain completion's thoughts split out by their tags (ollama's raw mode), whatever the chunks' boundaries. */
function split(chunks: string[], startsInThought = false) {
  const thoughts: string[] = [];
  const answer: string[] = [];
  const splitter = new TaggedThoughtSplitter("<think>", "</think>", { onThought: (t) => thoughts.push(t), onText: (t) => answer.push(t) }, startsInThought);
  for (const chunk of chunks) splitter.push(chunk);
  splitter.flush();
  expect(thoughts.join("")).toBe(splitter.thinking);
  expect(answer.join("")).toBe(splitter.answer);
  return [splitter.thinking, splitter.answer];
}

describe("TaggedThoughtSplitter", () => {
  const text = "<think>\nLet me see.\nYes.\n</think>\n\nThe answer is 4.";

  it("gives the thoughts and the answer without the tags and the whitespace next to them, however the text is cut", () => {
    for (let cut = 1; cut < text.length; cut++) {
      expect(split([text.slice(0, cut), text.slice(cut)])).toEqual(["Let me see.\nYes.", "The answer is 4."]);
    }
    expect(split([...text])).toEqual(["Let me see.\nYes.", "The answer is 4."]);
  });

  it("passes a text without thoughts through, and one the prompt opened starts in them (a repeated tag dropped)", () => {
    expect(split(["  Just ", "an answer"])).toEqual(["", "  Just an answer"]);
    expect(split(["<thin", "king is fun"])).toEqual(["", "<thinking is fun"]);
    expect(split(["hm\n</think>\n\nOk"], true)).toEqual(["hm", "Ok"]);
    expect(split(["<think>\nhm\n</think>\n\nOk"], true)).toEqual(["hm", "Ok"]);
  });

  it("ends unfinished thoughts as thoughts (cut by max tokens), without an answer", () => {
    expect(split(["<think>\nstill thinking \n"])).toEqual(["still thinking", ""]);
    expect(split(["<think>\nalmost </th"])).toEqual(["almost </th", ""]);
  });
});
