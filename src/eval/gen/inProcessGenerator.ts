import type { LoadedModel } from "../../engine/model.js";
import { SlotScheduler } from "../../engine/scheduler/slotScheduler.js";
import type { GenerateRequest } from "../../engine/types.js";
import type { AnswerGenerator } from "./generator.js";

/**
 * Answers on the loaded model itself, through the slot scheduler `lmrun serve` and `batch` use: one
 * context sequence per task in flight, their tokens decoded together in each llama_decode. `request`
 * holds the settings shared by every task.
 */
export function inProcessGenerator(loaded: LoadedModel, request: Omit<GenerateRequest, "prompt" | "systemPrompt" | "messages">): AnswerGenerator {
  const scheduler = new SlotScheduler(loaded, { maxQueue: Number.POSITIVE_INFINITY });
  return {
    parallel: scheduler.parallel,
    async generate(task, signal) {
      const messages = task.messages?.map((m) => ({ role: m.role, text: m.content }));
      const result = await scheduler.generate({ ...request, prompt: task.prompt, systemPrompt: task.systemPrompt, ...(messages ? { messages } : {}) }, { signal });
      return { text: result.text, promptTokens: result.promptTokens, generatedTokens: result.generatedTokens };
    },
  };
}
