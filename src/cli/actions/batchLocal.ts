import type { BatchDefaults } from "../../client/batchRemote.js";
import { itemSampling } from "../../client/batchRemote.js";
import type { Answerer } from "../../client/batchRun.js";
import type { LoadedModel } from "../../engine/model.js";
import { LmrunError } from "../../errors.js";
import { tokenLogprobs } from "../../server/logprobs.js";

/**
 * `lmrun batch` in-process: the model loaded here with one context sequence per slot, and the
 * requests decoded together by the same slot scheduler `lmrun serve` uses. Loaded lazily by
 * batch.ts, so that the client path never imports node-llama-cpp.
 */
export async function localAnswerer(loaded: LoadedModel, parallel: number, defaults: BatchDefaults): Promise<{ answer: Answerer; close: () => Promise<void> }> {
  const { SlotScheduler } = await import("../../engine/scheduler/slotScheduler.js");
  // The batch runner never starts more requests than there are slots: nothing waits in the queue.
  const scheduler = new SlotScheduler(loaded, { maxQueue: parallel });
  const useChat = !defaults.raw && loaded.summary.hasChatTemplate;
  const answer: Answerer = async (item, signal) => {
    if (item.messages !== undefined && !useChat) {
      throw new LmrunError(`"messages" need a chat template, and ${defaults.raw ? "--raw is plain completion" : `${loaded.summary.fileName} has none`}`);
    }
    const { sampling, stop } = itemSampling(item, defaults);
    const result = await scheduler.generate(
      {
        prompt: item.prompt ?? "",
        chat: useChat,
        systemPrompt: useChat ? (item.system ?? defaults.system) : undefined,
        ...(item.messages !== undefined ? { messages: item.messages.map((m) => ({ role: m.role, text: m.content })) } : {}),
        maxTokens: sampling.maxTokens,
        stop,
        sampling,
        truncate: false,
        ...((item.think ?? defaults.think) !== undefined ? { think: item.think ?? defaults.think } : {}),
        ...(item.logprobs !== undefined ? { logprobs: item.logprobs } : {}),
      },
      { signal },
    );
    return {
      text: result.text,
      ...(result.thinking !== undefined ? { thinking: result.thinking } : {}),
      ...(result.logprobs !== undefined ? { logprobs: tokenLogprobs(result.logprobs) } : {}),
      promptTokens: result.promptTokens,
      generatedTokens: result.generatedTokens,
      stopReason: result.stopReason,
      seed: sampling.seed,
      timings: {
        queueMs: result.queueMs,
        ttftMs: result.timings.ttftMs,
        promptMs: result.timings.promptMs,
        generationMs: result.timings.generationMs,
        totalMs: result.timings.totalMs,
        generationTokensPerSecond: result.timings.generationTokensPerSecond,
      },
    };
  };
  return {
    answer,
    close: async () => {
      scheduler.close();
      await scheduler.dispose();
    },
  };
}
