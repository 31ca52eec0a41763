import { describe, expect, it } from "vitest";
import { parseChatMessages } from "../../src/chat/messages.js";
import { parseBatch } from "../../src/client/batchFile.js";
import { parseGenTasks } from "../../src/eval/gen/tasks.js";

describe('"messages" in input files (batch requests and eval gen tasks share one parser)', () => {
  it("keeps role and content of each message, ending with the user's turn", () => {
    const messages = [
      { role: "system", content: "S", name: "ignored" },
      { role: "user", content: "Q1" },
      { role: "assistant", content: "A1" },
      { role: "user", content: "Q2" },
    ];
    expect(parseChatMessages(messages)).toEqual([
      { role: "system", content: "S" },
      { role: "user", content: "Q1" },
      { role: "assistant", content: "A1" },
      { role: "user", content: "Q2" },
    ]);
  });

  it.each([
    [[], '"messages" must be a non-empty array of {"role", "content"} objects'],
    ["hi", '"messages" must be a non-empty array of {"role", "content"} objects'],
    [[null], 'message 1 is not a {"role", "content"} object'],
    [[{ content: "x" }], 'message 1 has no "role"'],
    [[{ role: "tool", content: "T" }, { role: "user", content: "Q" }], 'message 1 has role "tool"; roles are system, user and assistant'],
    [[{ role: "user", content: 3 }], 'message 1: "content" must be a string'],
    [[{ role: "user", content: "Q" }, { role: "assistant", content: "A" }], "the last message must be the user's turn to answer"],
  ])("%j: %s, in batch and in eval gen alike", (messages, reason) => {
    expect(parseChatMessages(messages)).toBe(reason);
    expect(parseBatch(JSON.stringify({ id: 1, messages })).bad).toEqual([{ line: 1, reason }]);
    expect(() => parseGenTasks(JSON.stringify({ id: 1, messages, reference: "x" }), "t.jsonl")).toThrow(`t.jsonl line 1: ${reason}`);
  });
});
