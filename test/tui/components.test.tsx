import { render, cleanup } from "ink-testing-library";
import React from "react";
import { afterEach, describe, expect, it } from "vitest";
import { LiveReply } from "../../src/tui/components/LiveReply.js";
import { Markdown } from "../../src/tui/components/Markdown.js";
import { Prompt } from "../../src/tui/components/Prompt.js";
import { shortName, StatusBar } from "../../src/tui/components/StatusBar.js";
import { ThemeContext } from "../../src/tui/components/theme.js";
import { sampling } from "./fakeEngine.js";

afterEach(() => cleanup());

const plain = (node: React.ReactElement) => render(<ThemeContext.Provider value={{ color: false }}>{node}</ThemeContext.Provider>).lastFrame() ?? "";

describe("chat components", () => {
  it("shows a thinking model's thoughts dim until its answer starts, then the answer alone", () => {
    const thinking = plain(<LiveReply text="" thinking={"Let me see.\nThe user says hi."} tokens={9} width={40} rows={6} />);
    expect(thinking).toContain("Thinking…");
    expect(thinking).toContain("The user says hi.");
    expect(thinking).toContain("thinking… 9 tokens");
    const answering = plain(<LiveReply text="Hello!" thinking={"Let me see."} tokens={12} width={40} rows={6} />);
    expect(answering).toContain("Hello!");
    expect(answering).not.toContain("Let me see.");
    expect(answering).toContain("generating… 12 tokens");
  });

  it("renders Markdown code blocks in a frame, lists with bullets, and emphasis without its stars", () => {
    const frame = plain(<Markdown text={"## Steps\n1. install\n- **fast**\n```sh\nnpm i\n```"} />);
    expect(frame).toContain("Steps");
    expect(frame).toContain("1. install");
    expect(frame).toContain("• fast");
    expect(frame).not.toContain("**");
    expect(frame).toMatch(/╭─+╮\n│ sh\s+│\n│ npm i\s+│\n╰─+╯/);
  });

  it("warns in the status bar before the context overflows, and says what happens then", () => {
    const bar = (used: number, historyTokens: number) =>
      plain(
        <StatusBar
          modelName="m.gguf"
          context={{ used, size: 100, historyTokens }}
          lastStats={{ ttftMs: 20, tokensPerSecond: 99.5, promptTokens: 1, generatedTokens: 2, totalMs: 30, stopReason: "eos" }}
          phase="idle"
          sampling={sampling}
          attachments={0}
        />,
      );
    expect(bar(10, 10)).toBe(" m.gguf  ctx 10/100 (10%) │ 99.5 tok/s │ ttft 20.0ms │ temp 0.8 │ /help");
    expect(bar(85, 85)).toContain("context nearly full: when it fills, the oldest turns are dropped");
    expect(bar(90, 140)).toContain("the oldest turns have been dropped");
    expect(shortName("a-very-long-model-name-that-goes-on-and-on-Q4_K_M.gguf")).toBe("a-very-long-model-nam…on-Q4_K_M.gguf");
  });

  it("shows the cursor inside a multi-line draft", () => {
    const frame = plain(<Prompt draft={{ text: "ab\ncd", cursor: 4 }} active={true} placeholder="" />);
    expect(frame).toBe("› ab\n… cd");
  });
});
