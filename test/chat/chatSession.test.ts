import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaChatEngine } from "../../src/engine/chatSession.js";
import type { ChatSampling } from "../../src/engine/chatTypes.js";
import { loadModel } from "../../src/engine/model.js";
import { runCli } from "../helpers/cli.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { THINKING_ORACLE, writeThinkingOracle } from "../helpers/thinkingModel.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const greedy: ChatSampling = { temperature: 0, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, maxTokens: 24 };

describe.skipIf(!hasShared)(`chat engine on a real model (${hasShared ? "stories260K with a chat template" : sharedSkipReason})`, () => {
  let engine: LlamaChatEngine;
  beforeAll(async () => {
    const loaded = await loadModel(sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf"), {
      gpu: "cpu",
      gpuLayers: 0,
      contextSize: 256,
      threads: 1,
      verbose: false,
    });
    engine = await LlamaChatEngine.create(loaded, { modelName: "stories", systemPrompt: "Tell stories." });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("streams a reply, measures it and keeps the turns", async () => {
    let streamed = "";
    let tokens = 0;
    const reply = await engine.send("Once upon a time", { sampling: greedy, onText: (t) => (streamed += t), onTokens: (n) => (tokens += n) });
    expect(reply.text.length).toBeGreaterThan(0);
    expect(streamed).toBe(reply.text);
    expect(reply.stats.generatedTokens).toBe(tokens);
    expect(reply.stats.generatedTokens).toBeLessThanOrEqual(24);
    expect(reply.stats.promptTokens).toBeGreaterThan(3);
    expect(reply.stats.ttftMs).toBeGreaterThan(0);
    expect(reply.stats.tokensPerSecond).toBeGreaterThan(0);
    expect(["eos", "maxTokens"]).toContain(reply.stats.stopReason);
    expect(engine.getHistory()).toEqual([
      { role: "system", text: "Tell stories." },
      { role: "user", text: "Once upon a time" },
      { role: "assistant", text: reply.text },
    ]);
    const usage = engine.contextUsage();
    expect(usage.size).toBe(256);
    expect(usage.used).toBeGreaterThan(reply.stats.promptTokens);
    expect(usage.historyTokens).toBeGreaterThan(0);
  });

  it("is deterministic at temperature 0 after a reset, and a second turn sees the first", async () => {
    engine.reset();
    expect(engine.getHistory()).toEqual([{ role: "system", text: "Tell stories." }]);
    const a = await engine.send("Lily went to the park", { sampling: greedy });
    engine.reset();
    const b = await engine.send("Lily went to the park", { sampling: greedy });
    expect(b.text).toBe(a.text);
    await engine.send("Then what?", { sampling: greedy });
    expect(engine.getHistory().map((t) => t.role)).toEqual(["system", "user", "assistant", "user", "assistant"]);
  });

  it("counts a first reply's prompt as `lmrun run` counts the same prompt", async () => {
    // A fresh engine: a used one finds the system prompt already in its context and evaluates only what is new.
    const model = await loadModel(sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf"), { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 1, verbose: false });
    const fresh = await LlamaChatEngine.create(model, { modelName: "stories", systemPrompt: "Tell stories." });
    const reply = await fresh.send("Once upon a time", { sampling: greedy });
    await fresh.dispose();
    const run = JSON.parse(
      (await runCli(["run", sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf"), "Once upon a time", "--system", "Tell stories.", "--temp", "0", "-n", "24", "--json"])).stdout,
    );
    // Before: one fewer in chat (the meter counts the prompt's last token, decoded for its logits, as an output).
    expect(reply.stats.promptTokens).toBe(run.promptTokens);
  });

  it("stops on abort and keeps the partial reply", async () => {
    engine.setHistory([]);
    const controller = new AbortController();
    let pieces = 0;
    const reply = await engine.send("Tell me a long story", {
      sampling: { ...greedy, maxTokens: 200 },
      signal: controller.signal,
      onText: () => {
        if (++pieces === 5) controller.abort();
      },
    });
    expect(reply.stats.stopReason).toBe("abort");
    expect(reply.stats.generatedTokens).toBeLessThan(200);
    expect(engine.getHistory().at(-1)).toEqual({ role: "assistant", text: reply.text });
  });

  it("changes the system prompt in place", () => {
    engine.setHistory([{ role: "user", text: "hi" }, { role: "assistant", text: "hello" }]);
    engine.setSystem("Be kind.");
    expect(engine.getHistory()[0]).toEqual({ role: "system", text: "Be kind." });
    engine.setSystem(undefined);
    expect(engine.getHistory().map((t) => t.role)).toEqual(["user", "assistant"]);
  });
});

describe("chat engine on a thinking model (a Qwen3-shaped GGUF whose greedy thoughts and answer are known)", () => {
  it("streams the thoughts apart from the reply, counts their tokens, and keeps the reply alone as the turn's text", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-chat-thinking-"));
    const loaded = await loadModel(writeThinkingOracle(path.join(dir, "oracle.gguf")), { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 1, verbose: false });
    const engine = await LlamaChatEngine.create(loaded, { modelName: "oracle" });
    try {
      let thoughts = "";
      let text = "";
      let tokens = 0;
      const reply = await engine.send("Hi", { sampling: greedy, onThought: (t) => (thoughts += t), onText: (t) => (text += t), onTokens: (n) => (tokens += n) });
      expect([thoughts, text, reply.text]).toEqual([THINKING_ORACLE.thoughts, THINKING_ORACLE.answer, THINKING_ORACLE.answer]);
      expect(reply.stats.generatedTokens).toBe(THINKING_ORACLE.generatedTokens);
      expect(tokens).toBeGreaterThan(1);
    } finally {
      await engine.dispose();
    }
    // `lmrun chat --no-think`: the same model answers without thoughts.
    const again = await loadModel(path.join(dir, "oracle.gguf"), { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 1, verbose: false });
    const noThink = await LlamaChatEngine.create(again, { modelName: "oracle", think: false });
    try {
      let thoughts = "";
      const reply = await noThink.send("Hi", { sampling: greedy, onThought: (t) => (thoughts += t) });
      expect([thoughts, reply.text]).toEqual(["", THINKING_ORACLE.answer]);
    } finally {
      await noThink.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
