import path from "node:path";
import { render } from "ink-testing-library";
import React from "react";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup } from "ink-testing-library";
import { App } from "../../src/tui/App.js";
import type { ChatServices } from "../../src/tui/services.js";
import { FakeEngine, fakeServices, sampling, waitFor } from "./fakeEngine.js";

afterEach(() => cleanup());

const tick = () => new Promise((r) => setTimeout(r, 20));

function mount(engine: FakeEngine, services: ChatServices, extra: { onExit?: () => void; messages?: { role: "user" | "assistant"; text: string }[] } = {}) {
  const ui = render(
    <App
      engine={engine}
      services={services}
      sampling={sampling}
      session={{ id: "20260101-000000-test", createdAt: "2026-01-01T00:00:00.000Z" }}
      color={false}
      flushMs={5}
      {...(extra.messages ? { messages: extra.messages } : {})}
      {...(extra.onExit ? { onExit: extra.onExit } : {})}
    />,
  );
  const frame = () => ui.lastFrame() ?? "";
  // Debug rendering keeps every printed transcript; a redraw (clear, regen, load) starts at the last banner.
  const screen = () => frame().slice(frame().lastIndexOf("lmrun chat ·"));
  const type = async (data: string) => {
    ui.stdin.write(data);
    await tick();
  };
  return { ui, frame, screen, type };
}

describe("chat App", () => {
  it("keeps the terminal in raw mode while it redraws (Enter typed mid-redraw must still send)", async () => {
    const engine = new FakeEngine(() => ["one ", "two ", "three"]);
    const { ui, frame, type } = mount(engine, fakeServices());
    const rawModeCalls: boolean[] = [];
    const stdin = ui.stdin as unknown as { setRawMode: (on: boolean) => void };
    stdin.setRawMode = (on: boolean) => void rawModeCalls.push(on);
    for (const ch of "hello") await type(ch);
    await type("\r");
    await waitFor(() => frame().includes("123.4 tok/s"), "the reply");
    // Every keystroke and streamed chunk re-rendered the prompt; none may leave raw mode.
    expect(rawModeCalls.filter((on) => !on)).toEqual([]);
  });

  it("streams a reply, then shows it as Markdown with its stats, and saves the session", async () => {
    const engine = new FakeEngine(() => ["Here ", "is ", "**bold** ", "and `code`"]);
    const services = fakeServices();
    const { frame, type } = mount(engine, services);
    expect(frame()).toContain("lmrun chat · fake-model");
    expect(frame()).toContain("ctx 0/1000 (0%)");
    await type("hello");
    await type("\r");
    await waitFor(() => frame().includes("123.4 tok/s"), "the reply's stats");
    expect(frame()).toContain("› hello");
    expect(frame()).toContain("Here is bold and `code`");
    expect(frame()).not.toContain("**bold**");
    expect(frame()).toContain("4 tokens · 123.4 tok/s · first token 5.000ms");
    expect(engine.sent.map((s) => s.text)).toEqual(["hello"]);
    await waitFor(() => services.saved.length > 0, "an autosave");
    expect(services.saved.at(-1)).toMatchObject({
      id: "20260101-000000-test",
      messages: [
        { role: "user", text: "hello" },
        { role: "assistant", text: "Here is **bold** and `code`" },
      ],
    });
    expect(services.savedHistory.at(-1)).toEqual(["hello"]);
  });

  it("a resumed conversation is what the model sees on the next reply, and the status bar counts it", async () => {
    const engine = new FakeEngine(() => ["sure"]);
    const { frame, type } = mount(engine, fakeServices(), {
      messages: [
        { role: "user", text: "my name is Ada" },
        { role: "assistant", text: "hello Ada" },
      ],
    });
    // Before: the engine started empty, so the first reply after --resume saw none of it, and the bar said ctx 0.
    await waitFor(() => /ctx (\d+)\//.exec(frame())?.[1] !== "0", "the context to count the resumed turns");
    await type("what is my name?\r");
    await waitFor(() => engine.sent.length === 1 && frame().includes("sure"), "a reply");
    expect(engine.turns.slice(0, 3)).toEqual([
      { role: "user", text: "my name is Ada" },
      { role: "assistant", text: "hello Ada" },
      { role: "user", text: "what is my name?" },
    ]);
  });

  it("stops a reply on Ctrl+C and keeps what was produced", async () => {
    const engine = new FakeEngine(() => Array.from({ length: 500 }, (_, i) => `w${i} `), 5);
    const { frame, type } = mount(engine, fakeServices());
    await type("go\r");
    await waitFor(() => frame().includes("w3 "), "streaming to start");
    expect(frame()).toContain("generating…");
    await type("\x03");
    await waitFor(() => frame().includes("[stopped]"), "the stopped mark");
    expect(frame()).toContain("w0 w1 w2 w3");
    expect(frame()).not.toContain("w499");
    expect(frame()).not.toContain("generating…");
  });

  it("applies /set live, answers /stats and rejects bad values", async () => {
    const engine = new FakeEngine(() => ["ok"]);
    const { frame, type } = mount(engine, fakeServices());
    await type("/set temp 0\r");
    expect(frame()).toContain("temp 0: applies from the next reply");
    await type("/set top-p 7\r");
    expect(frame()).toContain("top-p must be between 0 and 1, got 7");
    await type("q\r");
    await waitFor(() => engine.sent.length === 1 && frame().includes("123.4 tok/s"), "a reply");
    expect(engine.sent[0]!.sampling.temperature).toBe(0);
    await type("/stats\r");
    expect(frame()).toContain("tokens/second:       123.40");
    await type("/nope\r");
    expect(frame()).toContain("unknown command /nope: /help lists them");
  });

  it("a /set typed right before a message applies to it (no render between them)", async () => {
    const engine = new FakeEngine(() => ["ok"]);
    const { ui, frame } = mount(engine, fakeServices());
    // Both lines in one go, as a fast typist or a tmux script sends them: the send must not read stale state.
    ui.stdin.write("/set max-tokens 7\r");
    ui.stdin.write("q\r");
    await waitFor(() => engine.sent.length === 1 && frame().includes("123.4 tok/s"), "a reply");
    expect(engine.sent[0]!.sampling.maxTokens).toBe(7);
  });

  it("attaches a file with /read, writes /save transcripts and loads them back", async () => {
    const engine = new FakeEngine(() => ["Sure."]);
    const services = fakeServices();
    const notes = path.resolve("notes.txt");
    services.files.set(notes, "remember the milk\n");
    const { frame, type } = mount(engine, services);
    await type("/read notes.txt\r");
    expect(frame()).toContain("attached notes.txt (18 chars)");
    await type("summarise\r");
    await waitFor(() => frame().includes("Sure."), "the reply");
    expect(engine.sent[0]!.text).toBe("File notes.txt:\n```\nremember the milk\n```\n\nsummarise");
    await type("/save out.md\r");
    await waitFor(() => services.files.has(path.resolve("out.md")), "the transcript");
    const md = services.files.get(path.resolve("out.md"))!;
    expect(md).toContain("## User\n\nAttached: `notes.txt`");
    expect(md).toContain("## Assistant\n\nSure.");
    await type("/save out.json\r");
    await waitFor(() => services.files.has(path.resolve("out.json")), "the JSON transcript");
    expect(JSON.parse(services.files.get(path.resolve("out.json"))!).messages[1]).toMatchObject({ role: "assistant", text: "Sure." });
    services.files.set(path.resolve("old.md"), "## User\n\nearlier question\n\n## Assistant\n\nearlier answer\n");
    await type("/load old.md\r");
    await waitFor(() => frame().includes("loaded 2 messages"), "the load notice");
    expect(frame()).toContain("earlier answer");
    expect(engine.getHistory()).toEqual([
      { role: "user", text: "earlier question" },
      { role: "assistant", text: "earlier answer" },
    ]);
    expect(services.clears).toBeGreaterThan(0);
  });

  it("regenerates the last reply and clears the conversation", async () => {
    let n = 0;
    const engine = new FakeEngine(() => [`answer ${++n}`]);
    const services = fakeServices();
    const { frame, screen, type } = mount(engine, services);
    await type("q\r");
    await waitFor(() => frame().includes("answer 1"), "the first answer");
    await type("/regen\r");
    await waitFor(() => frame().includes("answer 2"), "the regenerated answer");
    expect(screen()).not.toContain("answer 1");
    expect(services.clears).toBe(1);
    expect(engine.getHistory()).toEqual([
      { role: "user", text: "q" },
      { role: "assistant", text: "answer 2" },
    ]);
    await type("/clear\r");
    expect(screen()).not.toContain("answer 2");
    expect(screen()).toContain("started over");
    expect(engine.getHistory()).toEqual([]);
  });

  it("edits multi-line drafts, recalls history and exits on Ctrl+C twice", async () => {
    const engine = new FakeEngine(() => ["r"]);
    let exits = 0;
    const services = fakeServices({ history: ["older prompt"] });
    const { frame, type } = mount(engine, services, { onExit: () => exits++ });
    await type('"""');
    await type("\r");
    await type("line one");
    await type("\r");
    await type('line two"""');
    expect(frame()).toContain("… line one");
    await type("\r");
    await waitFor(() => engine.sent.length === 1, "the multi-line message");
    expect(engine.sent[0]!.text).toBe("line one\nline two");
    await waitFor(() => frame().includes("123.4 tok/s"), "the reply");
    await type("\x1b[A");
    expect(frame()).toContain('› """');
    await type("\x1b[A");
    expect(frame()).toContain("› older prompt");
    await type("\x03");
    expect(frame()).not.toContain("› older prompt");
    await type("\x03");
    expect(frame()).toContain("press Ctrl+C again to exit");
    expect(exits).toBe(0);
    await type("\x03");
    expect(exits).toBe(1);
  });

  it("switches model with /model and disposes the old one", async () => {
    const first = new FakeEngine(() => ["one"], 1, "first-model");
    const second = new FakeEngine(() => ["two"], 1, "second-model");
    const services = fakeServices({ switchModel: async () => second });
    const { frame, type } = mount(first, services);
    await type("q\r");
    await waitFor(() => frame().includes("123.4 tok/s"), "the first reply");
    await type("/model other.gguf\r");
    await waitFor(() => frame().includes("switched to second-model"), "the switch");
    expect(first.disposed).toBe(true);
    expect(second.getHistory()).toEqual([
      { role: "user", text: "q" },
      { role: "assistant", text: "one" },
    ]);
    expect(frame()).toContain(" second-model ");
  });

  it("shows matching commands while a slash command is typed, and completes with Tab", async () => {
    const { frame, type } = mount(new FakeEngine(() => []), fakeServices());
    await type("/s");
    expect(frame()).toContain("/system [TEXT]");
    expect(frame()).toContain("/stats");
    await type("ta");
    await type("\t");
    expect(frame()).toContain("› /stats");
  });
});
