import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatWrapperFor } from "../../src/engine/chatWrapper.js";
import { historyOfMessages } from "../../src/engine/generate.js";
import { loadModel, type LoadedModel } from "../../src/engine/model.js";
import type { ChatMessage } from "../../src/engine/types.js";
import { writeThinkingOracle } from "../helpers/thinkingModel.js";

/**
 * A tool loop is one model turn in node-llama-cpp: after tool results the model goes on with the turn
 * that called the tools. Rendered by a real chat wrapper (node-llama-cpp's QwenChatWrapper, picked for the
 * Qwen3-shaped test model), a loop of two rounds has no empty assistant turn and keeps both rounds' thoughts,
 * as Qwen3's own template renders it (llama-server --jinja).
 */

const call = (id: string, city: string): ChatMessage => ({ role: "assistant", text: "", thinking: `Check ${city}.`, toolCalls: [{ id, name: "weather", arguments: { city } }] });
const twoRounds: ChatMessage[] = [
  { role: "user", text: "Hi" },
  call("c1", "Paris"),
  { role: "tool", text: "sunny", toolCallId: "c1" },
  call("c2", "Rome"),
  { role: "tool", text: "rainy", toolCallId: "c2" },
];

describe("tool loops as node-llama-cpp keeps them", () => {
  it("two rounds of calls and results are one model turn, the second round its own chunk; the model goes on with it", () => {
    const history = historyOfMessages(twoRounds);
    expect(history.map((item) => item.type)).toEqual(["user", "model"]);
    const turn = history[1] as { response: Array<{ type?: string; startsNewChunk?: boolean; result?: unknown }> };
    expect(turn.response.map((part) => part.type)).toEqual(["segment", "functionCall", "segment", "functionCall"]);
    expect(turn.response[3]!.startsNewChunk).toBe(true);
    expect(turn.response.filter((part) => part.type === "functionCall").map((part) => part.result)).toEqual(["sunny", "rainy"]);
    // Text after the loop, then the user: a new turn for the user's next message.
    const after = historyOfMessages([...twoRounds, { role: "assistant", text: "Sunny, then rainy." }, { role: "user", text: "Thanks" }]);
    expect(after.map((item) => item.type)).toEqual(["user", "model", "user", "model"]);
    expect((after[1] as { response: unknown[] }).response.at(-1)).toBe("Sunny, then rainy.");
  });

  describe("rendered by the model's chat wrapper", () => {
    let dir: string;
    let loaded: LoadedModel;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-tool-loop-"));
      loaded = await loadModel(writeThinkingOracle(path.join(dir, "oracle.gguf")), { gpu: "cpu", gpuLayers: 0, contextSize: 1024, threads: 1, verbose: false });
    });
    afterAll(async () => {
      await loaded?.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it("no empty assistant turn between the rounds, both thoughts kept, and the prompt ends where the model goes on", async () => {
      const { chatWrapper } = await chatWrapperFor(loaded.model, loaded.summary.path);
      const { contextText } = chatWrapper.generateContextState({
        chatHistory: historyOfMessages(twoRounds),
        availableFunctions: { weather: { params: { type: "object", properties: { city: { type: "string" } } } } },
      });
      const text = contextText.toString();
      expect(text).not.toContain("<|im_start|>assistant\n<|im_end|>");
      expect(text).toContain("<think>\nCheck Paris.\n</think>");
      expect(text).toContain("<think>\nCheck Rome.\n</think>");
      expect(text.match(/<\|im_start\|>assistant\n/g)).toHaveLength(3);
      expect(text.endsWith("</tool_response><|im_end|>\n<|im_start|>assistant\n")).toBe(true);
    });
  });
});
