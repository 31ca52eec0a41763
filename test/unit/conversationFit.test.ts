import { describe, expect, it } from "vitest";
import { dropOldestMessages, linkToolResults } from "../../src/engine/conversation.js";
import { historyOfMessages } from "../../src/engine/generate.js";
import type { ChatMessage } from "../../src/engine/types.js";

const turn = (i: number): ChatMessage[] => [
  { role: "user", text: `q${i}` },
  { role: "assistant", text: `a${i}` },
];

describe("a conversation cut to fit the context (ollama's truncate)", () => {
  const messages: ChatMessage[] = [{ role: "system", text: "S" }, ...turn(1), ...turn(2), ...turn(3), { role: "user", text: "last" }];
  const fitsWithin = (limit: number) => (candidate: ChatMessage[]) => candidate.length <= limit;

  it("drops the oldest turns first, keeping every system message and the last message", () => {
    expect(dropOldestMessages(messages, fitsWithin(4))!.map((m) => m.text)).toEqual(["S", "q3", "a3", "last"]);
    expect(dropOldestMessages(messages, fitsWithin(2))!.map((m) => m.text)).toEqual(["S", "last"]);
    expect(dropOldestMessages(messages, fitsWithin(100))).toEqual(messages);
  });

  it("gives up when even the system messages and the last message do not fit", () => {
    expect(dropOldestMessages(messages, fitsWithin(1))).toBeUndefined();
  });

  it("drops a tool result whose call was dropped", () => {
    const withTools: ChatMessage[] = [
      { role: "user", text: "q" },
      { role: "assistant", text: "", toolCalls: [{ id: "c1", name: "f", arguments: {} }] },
      { role: "tool", text: "result", toolCallId: "c1" },
      { role: "user", text: "last" },
    ];
    expect(dropOldestMessages(withTools, fitsWithin(2))!.map((m) => m.text)).toEqual(["last"]);
  });
});

describe("tool results and the calls they answer", () => {
  const call = (id: string, name = "f") => ({ id, name, arguments: {} });

  it("links by id, else to the nearest unanswered call (ollama's clients name none); an answer to nothing is the orphan", () => {
    const messages: ChatMessage[] = [
      { role: "user", text: "q" },
      { role: "assistant", text: "", toolCalls: [call("a"), call("b")] },
      { role: "tool", text: "B", toolCallId: "b" },
      { role: "tool", text: "A" },
      { role: "tool", text: "extra" },
    ];
    const links = linkToolResults(messages);
    expect(links.resultOf(1, 0)).toBe("A");
    expect(links.resultOf(1, 1)).toBe("B");
    expect(links.orphan).toBe(4);
    const history = historyOfMessages(messages.slice(0, 4));
    expect(history[1]).toEqual({
      type: "model",
      response: [
        { type: "functionCall", name: "f", params: {}, result: "A" },
        { type: "functionCall", name: "f", params: {}, result: "B" },
      ],
    });
  });

  it("a tool message before any call is an orphan", () => {
    expect(linkToolResults([{ role: "user", text: "q" }, { role: "tool", text: "x", toolCallId: "z" }]).orphan).toBe(1);
  });
});

describe("thoughts sent back with an assistant turn", () => {
  const messages: ChatMessage[] = [
    { role: "user", text: "Hi" },
    { role: "assistant", text: "Hello", thinking: "greet back" },
    { role: "user", text: "Bye" },
  ];

  it("become a thought segment for a wrapper that renders thoughts, and are left out for one that does not (they would read as answer text)", () => {
    expect(historyOfMessages(messages)[1]).toEqual({ type: "model", response: [{ type: "segment", segmentType: "thought", text: "greet back", ended: true }, "Hello"] });
    expect(historyOfMessages(messages, { thoughts: false })[1]).toEqual({ type: "model", response: ["Hello"] });
  });
});
