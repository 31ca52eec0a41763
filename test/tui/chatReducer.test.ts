import { describe, expect, it } from "vitest";
import type { ReplyStats } from "../../src/engine/chatTypes.js";
import { formatContext, formatReplyStats, statsLines, tailToFit, wrapPlain } from "../../src/tui/format.js";
import { chatReducer, contextLevel, initialChatState, savedMessages, type ChatState } from "../../src/tui/state/chatReducer.js";

const sampling = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, maxTokens: 64 };
const stats: ReplyStats = { ttftMs: 12, tokensPerSecond: 250, promptTokens: 9, generatedTokens: 5, totalMs: 40, stopReason: "eos" };

function start(): ChatState {
  return initialChatState({ modelName: "m", sampling, context: { used: 0, size: 100, historyTokens: 0 } });
}

describe("chatReducer", () => {
  it("runs one exchange: submit, streamed chunks, done", () => {
    let s = chatReducer(start(), { type: "attach", attachment: { name: "a.txt", text: "A" } });
    s = chatReducer(s, { type: "submit", text: "hi", attachments: s.attachments });
    expect(s.phase).toBe("generating");
    expect(s.attachments).toEqual([]);
    expect(s.items).toEqual([{ id: 1, kind: "user", text: "hi", attachments: [{ name: "a.txt", text: "A" }] }]);
    s = chatReducer(s, { type: "chunk", text: "", thinking: "hm", tokens: 3 });
    s = chatReducer(s, { type: "chunk", text: "Hel", tokens: 1 });
    s = chatReducer(s, { type: "chunk", text: "lo", tokens: 1 });
    expect(s.live).toEqual({ text: "Hello", thinking: "hm", tokens: 5 });
    s = chatReducer(s, { type: "done", text: "Hello", stats, stopped: false, context: { used: 20, size: 100, historyTokens: 20 } });
    expect(s.live).toBeNull();
    expect(s.phase).toBe("idle");
    expect(s.lastStats).toBe(stats);
    expect(s.context.used).toBe(20);
    expect(savedMessages(s.items)).toEqual([
      { role: "user", text: "hi", attachments: [{ name: "a.txt", text: "A" }] },
      { role: "assistant", text: "Hello", stats },
    ]);
  });

  it("keeps a stopped reply and marks it, and keeps partial text when generation fails", () => {
    let s = chatReducer(start(), { type: "submit", text: "q", attachments: [] });
    s = chatReducer(s, { type: "done", text: "part", stats: { ...stats, stopReason: "abort" }, stopped: true, context: s.context });
    expect(savedMessages(s.items).at(-1)).toMatchObject({ role: "assistant", text: "part", stopped: true });
    s = chatReducer(s, { type: "submit", text: "q2", attachments: [] });
    s = chatReducer(s, { type: "failed", message: "boom", partial: "half" });
    expect(s.items.slice(-2)).toMatchObject([
      { kind: "assistant", text: "half", stopped: true },
      { kind: "notice", text: "boom", tone: "error" },
    ]);
    expect(s.phase).toBe("idle");
  });

  it("rewrites the transcript only through a new epoch (clear, regen, load)", () => {
    let s = chatReducer(start(), { type: "submit", text: "q", attachments: [] });
    s = chatReducer(s, { type: "done", text: "a", stats, stopped: false, context: s.context });
    s = chatReducer(s, { type: "dropLastExchange" });
    expect(s.items).toEqual([]);
    expect(s.epoch).toBe(1);
    s = chatReducer(s, { type: "replaceMessages", messages: [{ role: "user", text: "x" }, { role: "assistant", text: "y", stats }], system: "sys", context: s.context });
    expect(s.epoch).toBe(2);
    expect(s.system).toBe("sys");
    expect(s.lastStats).toEqual(stats);
    expect(s.items.map((i) => i.id)).toEqual([3, 4]);
    s = chatReducer(s, { type: "clear" });
    expect(s.items).toEqual([]);
    expect(s.epoch).toBe(3);
  });

  it("applies live settings, model switches and hints", () => {
    let s = chatReducer(start(), { type: "setSampling", patch: { temperature: 0 } });
    expect(s.sampling.temperature).toBe(0);
    s = chatReducer(s, { type: "loading" });
    expect(s.phase).toBe("loading");
    s = chatReducer(s, { type: "modelReady", modelName: "other", context: { used: 0, size: 200, historyTokens: 0 } });
    expect(s).toMatchObject({ phase: "idle", modelName: "other" });
    s = chatReducer(s, { type: "hint", text: "press again" });
    expect(s.hint).toBe("press again");
  });

  it("warns from 80% of the context and says when turns no longer fit", () => {
    expect(contextLevel({ used: 10, size: 100, historyTokens: 10 })).toBe("ok");
    expect(contextLevel({ used: 80, size: 100, historyTokens: 80 })).toBe("warn");
    expect(contextLevel({ used: 90, size: 100, historyTokens: 130 })).toBe("full");
  });
});

describe("chat formatting", () => {
  it("formats stats and context", () => {
    expect(formatReplyStats(stats)).toBe("5 tokens · 250.0 tok/s · first token 12.0ms");
    expect(formatContext({ used: 50, size: 200, historyTokens: 40 })).toBe("ctx 50/200 (25%)");
    expect(statsLines(stats, { used: 50, size: 200, historyTokens: 40 })).toContain("tokens/second:       250.00");
    expect(statsLines(null, { used: 0, size: 200, historyTokens: 0 })[0]).toBe("no reply yet");
  });

  it("word-wraps the streaming reply and keeps only the rows that fit", () => {
    expect(wrapPlain("the quick brown fox jumps", 10)).toEqual(["the quick", "brown fox", "jumps"]);
    expect(wrapPlain("0123456789abcdefghij\n\nx", 10)).toEqual(["0123456789", "abcdefghij", "", "x"]);
    expect(tailToFit("a\nb\nc\nd", 10, 2)).toEqual({ lines: ["c", "d"], hiddenRows: 2 });
    expect(tailToFit("short", 10, 5)).toEqual({ lines: ["short"], hiddenRows: 0 });
  });
});
