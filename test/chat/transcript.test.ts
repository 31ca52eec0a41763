import { describe, expect, it } from "vitest";
import {
  parseTranscript,
  parseTranscriptJson,
  renderTranscript,
  TranscriptFormatError,
  transcriptTurns,
  userTurnText,
  type Transcript,
} from "../../src/chat/transcript.js";

const transcript: Transcript = {
  version: 1,
  id: "20261125-144853-ab12",
  createdAt: "2026-11-25T14:48:53.000Z",
  updatedAt: "2026-11-25T14:50:00.000Z",
  model: { name: "tiny", path: "/m/tiny.gguf" },
  system: "Be brief.",
  sampling: { temperature: 0 },
  messages: [
    { role: "user", text: "Summarise this", attachments: [{ name: "notes.txt", text: "line 1\nline 2\n" }] },
    { role: "assistant", text: "Here:\n\n- **one**\n- two" },
    { role: "user", text: "and?" },
    { role: "assistant", text: "cut sho", stopped: true },
  ],
};

describe("transcripts", () => {
  it("sends attached files before the question", () => {
    expect(userTurnText(transcript.messages[0]!)).toBe("File notes.txt:\n```\nline 1\nline 2\n```\n\nSummarise this");
    expect(transcriptTurns("sys", transcript.messages).map((t) => t.role)).toEqual(["system", "user", "assistant", "user", "assistant"]);
  });

  it("writes a readable Markdown transcript and reads it back", () => {
    const md = renderTranscript("chat.md", transcript);
    expect(md).toContain("# Chat with tiny");
    expect(md).toContain("## System\n\nBe brief.\n");
    expect(md).toContain("## User\n\nAttached: `notes.txt`\n\n```\nline 1\nline 2\n```\n\nSummarise this\n");
    expect(md).toContain("## Assistant\n\nHere:\n\n- **one**\n- two\n");
    expect(md).toContain("cut sho\n\n_(stopped)_");
    const back = parseTranscript("chat.md", md);
    expect(back.system).toBe("Be brief.");
    expect(back.model.name).toBe("tiny");
    expect(back.messages.slice(1)).toEqual([
      { role: "assistant", text: "Here:\n\n- **one**\n- two" },
      { role: "user", text: "and?" },
      { role: "assistant", text: "cut sho", stopped: true },
    ]);
  });

  it("round-trips JSON exactly", () => {
    const json = renderTranscript("chat.json", transcript);
    expect(JSON.parse(json)).toEqual(transcript);
    expect(parseTranscript("chat.json", json)).toEqual(transcript);
  });

  it("explains what is wrong with a file it cannot load", () => {
    expect(() => parseTranscriptJson("{")).toThrow(TranscriptFormatError);
    expect(() => parseTranscriptJson('{"messages":[{"role":"bot","text":"x"}]}')).toThrow(/message 1 needs a role/);
    expect(() => parseTranscript("x.md", "just some text")).toThrow(/no `## User`/);
  });
});
