import { describe, expect, it } from "vitest";
import { StopTextFilter } from "../../src/engine/stopText.js";

function feed(stops: string[], chunks: string[]): { shown: string[]; filter: StopTextFilter } {
  const filter = new StopTextFilter(stops);
  const shown = chunks.map((c) => filter.push(c));
  return { shown, filter };
}

describe("StopTextFilter", () => {
  it("stops before a stop text split across chunks, never showing any of it", () => {
    const { shown, filter } = feed(["girl named"], ["a little", " girl", " na", "med Lily"]);
    expect(shown).toEqual(["a little", " ", "", ""]);
    expect(filter.stopped).toBe(true);
    expect(filter.text).toBe("a little ");
  });

  it("holds back what could still become a stop text, and lets it go when it does not", () => {
    const { shown, filter } = feed(["END"], ["the E", "N", "ding"]);
    expect(shown).toEqual(["the ", "", "ENding"]);
    expect(filter.stopped).toBe(false);
    expect(filter.flush()).toBe("");
    expect(filter.text).toBe("the ENding");
  });

  it("flushes a held-back prefix when generation ends without a stop", () => {
    const { filter } = feed(["###"], ["done #"]);
    expect(filter.text).toBe("done ");
    expect(filter.flush()).toBe("#");
    expect(filter.text).toBe("done #");
  });

  it("takes the earliest of several stop texts, and ignores empty ones", () => {
    const { filter } = feed(["", "cat", "b"], ["a b cat"]);
    expect(filter.text).toBe("a ");
    expect(filter.stopped).toBe(true);
    expect(filter.push("more")).toBe("");
  });
});
