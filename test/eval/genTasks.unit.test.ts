import { describe, expect, it } from "vitest";
import { parseGenTasks } from "../../src/eval/gen/tasks.js";

const line = (messages: unknown) => JSON.stringify({ id: "a", messages, reference: "x" });

describe("eval gen tasks: messages", () => {
  it("a system message and one user turn become prompt + system prompt (what --raw and run take)", () => {
    const [task] = parseGenTasks(line([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }]), "t.jsonl");
    expect(task).toMatchObject({ prompt: "Hi", systemPrompt: "Be brief." });
    expect(task!.messages).toBeUndefined();
  });

  it("several turns are kept as a conversation ending with the user's turn", () => {
    const messages = [
      { role: "system", content: "S" },
      { role: "user", content: "Q1" },
      { role: "assistant", content: "A1" },
      { role: "user", content: "Q2" },
    ];
    const [task] = parseGenTasks(line(messages), "t.jsonl");
    expect(task).toMatchObject({ prompt: "Q2", messages });
  });

  it("names the line and what is wrong", () => {
    expect(() => parseGenTasks(line([{ role: "user", content: "Q" }, { role: "assistant", content: "A" }]), "t.jsonl")).toThrow(/t\.jsonl line 1: the last message must be the user's turn/);
    expect(() => parseGenTasks(line([{ role: "user", content: "Q" }, { role: "system", content: "S" }, { role: "user", content: "Q" }]), "t.jsonl")).toThrow(/line 1: a system message may only come first \(message 2\)/);
    expect(() => parseGenTasks(line([{ role: "tool", content: "T" }, { role: "user", content: "Q" }]), "t.jsonl")).toThrow(/message 1 has role "tool"/);
    expect(() => parseGenTasks(line([]), "t.jsonl")).toThrow(/non-empty array/);
  });
});
