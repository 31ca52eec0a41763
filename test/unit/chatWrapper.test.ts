import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ChatWrapper, LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatWrapperFor, chatWrapperForThinking, identify, rebuild } from "../../src/engine/chatWrapper.js";
import { loadModel, type LoadedModel } from "../../src/engine/model.js";
import { loadNodeLlamaCpp } from "../../src/engine/nodeLlamaCpp.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const nlc = await loadNodeLlamaCpp();

/** How a wrapper lays out a conversation: equal for interchangeable wrappers. */
function layout(wrapper: ChatWrapper): string {
  const { contextText, stopGenerationTriggers } = wrapper.generateContextState({
    chatHistory: [
      { type: "system", text: "Be brief." },
      { type: "user", text: "Name a colour" },
      { type: "model", response: ["Red."] },
      { type: "user", text: "Another" },
      { type: "model", response: [] },
    ],
  });
  return JSON.stringify([wrapper.wrapperName, contextText.toJSON(), stopGenerationTriggers.map((t) => t.toJSON())]);
}

describe("chat wrapper choice (which of node-llama-cpp's wrappers and option sets to rebuild)", () => {
  // Every specialised wrapper under every option set resolveChatWrapper may pick it with.
  const cases: Array<{ name: string; config: number; wrapper: ChatWrapper }> = [];
  for (const name of nlc.specializedChatWrapperTypeNames) {
    const wrapperClass = nlc.resolveChatWrapper({ type: name, warningLogs: false })!.constructor as {
      new (o?: object): ChatWrapper;
      _getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate?: () => unknown[];
    };
    const sets = wrapperClass._getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate?.() ?? [];
    cases.push({ name, config: -1, wrapper: new wrapperClass({}) });
    sets.forEach((set, config) => {
      const options = Array.isArray(set) ? ((set[1] as object | undefined) ?? {}) : (set as object);
      cases.push({ name, config, wrapper: new wrapperClass(options) });
    });
  }

  it("covers node-llama-cpp's wrappers", () => {
    expect(cases.length).toBeGreaterThan(nlc.specializedChatWrapperTypeNames.length);
    expect(new Set(cases.map((c) => c.name)).size).toBe(nlc.specializedChatWrapperTypeNames.length);
  });

  it("rebuilds each one, under each option set, with the same layout", () => {
    const wrong: string[] = [];
    for (const c of cases) {
      const choice = identify(nlc, {} as LlamaModel, c.wrapper);
      // Another option set of the same wrapper may lay out conversations identically: equally good.
      const rebuilt = choice ? rebuild(nlc, {} as LlamaModel, choice) : undefined;
      if (choice?.wrapper !== c.name || !rebuilt || layout(rebuilt) !== layout(c.wrapper)) wrong.push(`${c.name} #${c.config}: ${JSON.stringify(choice)}`);
    }
    expect(wrong).toEqual([]);
  });
});

describe.skipIf(!hasShared)(`chat wrapper cache on real models (${hasShared ? "135M-shape Llama 2 template, stories260K synthetic template" : sharedSkipReason})`, () => {
  const loaded: LoadedModel[] = [];
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-chatwrapper-"));
    for (const name of ["llama2vocab-135m-shape-random-Q4_K_M.gguf", "stories260K-Q8_0-synthetic-chat-template.gguf"]) {
      // A copy, so that its modification time can be changed.
      const copy = path.join(dir, name);
      fs.copyFileSync(sharedModel(name), copy);
      loaded.push(await loadModel(copy, { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 1, verbose: false }));
    }
  });
  afterAll(async () => {
    for (const l of loaded) await l.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("resolves once, then rebuilds the same wrapper from the cache", async () => {
    const cacheFile = path.join(dir, "cache-a", "chat-wrappers.json");
    for (const model of loaded) {
      const auto = nlc.resolveChatWrapper(model.model);
      const first = await chatWrapperFor(model.model, model.summary.path, cacheFile);
      expect(first.cached).toBe(false);
      const second = await chatWrapperFor(model.model, model.summary.path, cacheFile);
      expect(second.cached).toBe(true);
      expect(layout(second.chatWrapper)).toBe(layout(auto));
      expect(layout(first.chatWrapper)).toBe(layout(auto));
    }
    const stored = JSON.parse(fs.readFileSync(cacheFile, "utf8"));
    expect(Object.values(stored.entries).map((e) => (e as { wrapper: string }).wrapper)).toEqual(["jinjaTemplate", "jinjaTemplate"]);
  });

  it("treats a corrupt cache as empty and writes a good one", async () => {
    const cacheFile = path.join(dir, "cache-b", "chat-wrappers.json");
    fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
    fs.writeFileSync(cacheFile, "{ not json");
    const model = loaded[0]!;
    expect((await chatWrapperFor(model.model, model.summary.path, cacheFile)).cached).toBe(false);
    expect((await chatWrapperFor(model.model, model.summary.path, cacheFile)).cached).toBe(true);
    expect(JSON.parse(fs.readFileSync(cacheFile, "utf8")).version).toBe(1);
  });

  it("resolves again when the model file changes", async () => {
    const cacheFile = path.join(dir, "cache-c", "chat-wrappers.json");
    const model = loaded[1]!;
    await chatWrapperFor(model.model, model.summary.path, cacheFile);
    expect((await chatWrapperFor(model.model, model.summary.path, cacheFile)).cached).toBe(true);
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(model.summary.path, later, later);
    expect((await chatWrapperFor(model.model, model.summary.path, cacheFile)).cached).toBe(false);
  });
});

describe("a request's thinking setting, through the switches node-llama-cpp's wrappers have", () => {
  const text = (wrapper: ChatWrapper) =>
    wrapper.generateContextState({ chatHistory: [{ type: "user", text: "Hi" }, { type: "model", response: [] }] }).contextText.toString();

  it("Qwen3 with thinking off opens the answer with an empty thought, as its template's enable_thinking=false does", () => {
    const qwen = new nlc.QwenChatWrapper();
    const off = chatWrapperForThinking(nlc, { chatWrapper: qwen, cached: true, choice: { wrapper: "qwen", config: -1 } }, false);
    expect(text(qwen).endsWith("<|im_start|>assistant\n")).toBe(true);
    expect(text(off)).toBe(`${text(qwen)}<think>\n\n</think>\n\n`);
    // On, unset, or a level: the model's own wrapper.
    for (const think of [true, undefined, "high" as const]) expect(chatWrapperForThinking(nlc, { chatWrapper: qwen, cached: true, choice: { wrapper: "qwen", config: -1 } }, think)).toBe(qwen);
    // A wrapper not identified (no known option set) is left as it is: the thought budget of 0 then turns thinking off.
    expect(chatWrapperForThinking(nlc, { chatWrapper: qwen, cached: false }, false)).toBe(qwen);
  });

  it("gpt-oss (Harmony) is told the reasoning effort asked for", () => {
    const harmony = new nlc.HarmonyChatWrapper({ todayDate: null });
    const resolved = { chatWrapper: harmony, cached: true, choice: { wrapper: "harmony", config: -1 } };
    expect(text(harmony)).toContain("Reasoning: medium");
    for (const level of ["low", "high"] as const) expect(text(chatWrapperForThinking(nlc, resolved, level))).toContain(`Reasoning: ${level}`);
    expect(chatWrapperForThinking(nlc, resolved, "medium")).toBe(harmony);
  });
});
