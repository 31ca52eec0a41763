import { describe, expect, it } from "vitest";
import { ContinuationText } from "../../src/engine/continuationText.js";

// An SPM-like detokenizer: token 10 is "▁One", 11 is "▁day", 12 is ","; alone, the first piece loses its word-start space.
const pieces: Record<number, string> = { 1: "", 5: "▁friends.", 10: "▁One", 11: "▁day", 12: "," };
function detokenize(tokens: readonly number[], _special?: boolean, lastTokens?: readonly number[]): string {
  const text = [...(lastTokens ?? []), ...tokens].map((t) => pieces[t]!).join("").replaceAll("▁", " ");
  const before = (lastTokens ?? []).map((t) => pieces[t]!).join("").replaceAll("▁", " ");
  const whole = text.startsWith(" ") ? text.slice(1) : text;
  const head = before.startsWith(" ") ? before.slice(1) : before;
  return lastTokens && lastTokens.length > 0 && head.length > 0 ? whole.slice(head.length) : whole;
}

describe("ContinuationText", () => {
  it("gives the first chunk the word-start space that reading it alone dropped, and only the first", () => {
    const text = new ContinuationText(detokenize, [1, 5]);
    text.tokens([10]);
    expect(text.chunk("One")).toBe(" One");
    text.tokens([11]);
    expect(text.chunk(" day")).toBe(" day");
    expect(text.whole("One day")).toBe(" One day");
  });

  it("adds nothing when the answer starts without a space", () => {
    const text = new ContinuationText(detokenize, [1, 5]);
    text.tokens([12]);
    expect(text.chunk(",")).toBe(",");
    expect(text.whole(", day")).toBe(", day");
  });

  it("adds nothing without a prompt, and leaves an empty answer empty", () => {
    const text = new ContinuationText(detokenize, []);
    text.tokens([10]);
    expect(text.chunk("One")).toBe("One");
    expect(new ContinuationText(detokenize, [1, 5]).whole("")).toBe("");
  });
});
