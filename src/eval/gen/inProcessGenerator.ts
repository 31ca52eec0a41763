import { generate } from "../../engine/generate.js";
import type { LoadedModel } from "../../engine/model.js";
import type { GenerateRequest } from "../../engine/types.js";
import type { AnswerGenerator } from "./generator.js";

/**
 * Answers on the loaded model itself: each task takes one of the context's sequences for the
 * length of its generation, and node-llama-cpp decodes the sequences in flight together (several
 * tasks per llama_decode). `request` holds the settings shared by every task.
 */
export function inProcessGenerator(loaded: LoadedModel, request: Omit<GenerateRequest, "prompt" | "systemPrompt">): AnswerGenerator {
  return {
    parallel: loaded.context.totalSequences,
    async generate(task, signal) {
      // node-llama-cpp hands a disposed sequence's id back a moment later (under a lock), so the
      // next task may find none free yet: wait for it rather than fail with "No sequences left".
      for (let waited = 0; loaded.context.sequencesLeft === 0; waited += 2) {
        if (waited > 30_000) throw new Error("no context sequence became free in 30 s");
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      const result = await generate(loaded, { ...request, prompt: task.prompt, systemPrompt: task.systemPrompt }, { signal });
      return { text: result.text, promptTokens: result.promptTokens, generatedTokens: result.generatedTokens };
    },
  };
}
