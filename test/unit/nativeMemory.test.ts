import { describe, expect, it, vi } from "vitest";

/** A fresh copy of the module (its debt and counters are module state). */
async function fresh() {
  vi.resetModules();
  return import("../../src/engine/nativeMemory.js");
}
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("native memory left to the collector (node-llama-cpp's per-generation sampler buffers)", () => {
  it("collects once the finished generations' buffers pass the budget and nothing is generating", async () => {
    const memory = await fresh();
    // 152k-entry vocabulary: 1.8 MB a generation, an 8 MB budget.
    for (let i = 0; i < 4; i++) {
      memory.generationStarted();
      memory.generationEnded(152_000);
    }
    await nextTurn();
    expect(memory.nativeMemoryCollections()).toBe(0);
    memory.generationStarted();
    memory.generationEnded(152_000);
    await nextTurn();
    expect(memory.nativeMemoryCollections()).toBe(1);
  });

  it("waits while another generation is in flight, unless the debt reaches four budgets", async () => {
    const memory = await fresh();
    memory.generationStarted(); // a long one, still running
    for (let i = 0; i < 5; i++) {
      memory.generationStarted();
      memory.generationEnded(152_000);
      await nextTurn();
    }
    expect(memory.nativeMemoryCollections()).toBe(0);
    memory.generationEnded(152_000); // the long one ends: nothing is generating
    await nextTurn();
    expect(memory.nativeMemoryCollections()).toBe(1);
    memory.generationStarted();
    for (let i = 0; i < 19; i++) {
      memory.generationStarted();
      memory.generationEnded(152_000);
      await nextTurn();
    }
    // 19 x 1.8 MB = 34.7 MB >= 4 x 8 MB: collected though one is still generating.
    expect(memory.nativeMemoryCollections()).toBe(2);
  });
});
