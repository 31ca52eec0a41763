import { describe, expect, it } from "vitest";
import { defaultThreads, SMALL_MODEL_BYTES } from "../../src/config/defaults.js";
import { modelFacts, resolveLoadOptions, threadsAboveCoresWarning } from "../../src/cli/modelOptions.js";
import { threadpoolShimAvailable } from "../../src/engine/threadpool.js";
import { bundledTinyModel } from "../helpers/shared.js";

describe("default generation threads (measured: README, Threads)", () => {
  it("one thread on two cores or fewer without the persistent pool, whatever the model", () => {
    expect(defaultThreads(1)).toBe(1);
    expect(defaultThreads(2)).toBe(1);
    expect(defaultThreads(2, 4e9)).toBe(1);
  });
  it("every core on two cores or fewer with the persistent pool", () => {
    expect(defaultThreads(1, undefined, true)).toBe(1);
    expect(defaultThreads(2, undefined, true)).toBe(2);
    expect(defaultThreads(2, 379_168, true)).toBe(2);
    expect(defaultThreads(16, 379_168, true)).toBe(1);
    expect(defaultThreads(16, 4e9, true)).toBe(8);
  });
  it("half the cores (at most 16) for real-sized models on bigger machines", () => {
    expect(defaultThreads(16)).toBe(8);
    expect(defaultThreads(16, 650e6)).toBe(8);
    expect(defaultThreads(4, SMALL_MODEL_BYTES)).toBe(2);
    expect(defaultThreads(64, 4e9)).toBe(16);
  });
  it("one thread for tiny models, whose token is too little work to share", () => {
    expect(defaultThreads(16, 379_168)).toBe(1);
    expect(defaultThreads(16, SMALL_MODEL_BYTES - 1)).toBe(1);
  });
  it("the model's size reaches the default through resolveLoadOptions, and a flag or setting still wins", () => {
    const facts = modelFacts(bundledTinyModel);
    expect(facts).toEqual({ fileName: "stories260K-Q8_0.gguf", sizeBytes: 379_168 });
    expect(resolveLoadOptions({}, { LMRUN_THREADPOOL: "0" }, {}, false, facts).threads).toBe(defaultThreads(undefined, facts.sizeBytes, false));
    // With the shim built (Linux with a C compiler at install) the pool's default applies.
    expect(resolveLoadOptions({}, {}, {}, false, facts).threads).toBe(defaultThreads(undefined, facts.sizeBytes, threadpoolShimAvailable({})));
    expect(resolveLoadOptions({ threads: 3 }, {}, {}, false, facts).threads).toBe(3);
    expect(resolveLoadOptions({}, { LMRUN_THREADS: "5" }, {}, false, facts).threads).toBe(5);
    expect(resolveLoadOptions({}, {}, { threads: 6 }, false, facts).threads).toBe(6);
    expect(modelFacts("/nonexistent/x.gguf")).toEqual({ fileName: "x.gguf", sizeBytes: undefined });
  });

  it("only lmrun's own thread count follows the machine's load; a count the user gave is used as given", () => {
    const facts = modelFacts(bundledTinyModel);
    expect(resolveLoadOptions({}, {}, {}, false, facts).adaptiveThreads).toBe(true);
    expect(resolveLoadOptions({}, {}, { tuned: { [facts.fileName]: { threads: 2 } } }, false, facts).adaptiveThreads).toBe(true);
    expect(resolveLoadOptions({ threads: 2 }, {}, {}, false, facts).adaptiveThreads).toBe(false);
    expect(resolveLoadOptions({}, { LMRUN_THREADS: "2" }, {}, false, facts).adaptiveThreads).toBe(false);
    expect(resolveLoadOptions({}, {}, { threads: 2 }, false, facts).adaptiveThreads).toBe(false);
  });

  it("prompt batches follow -t when only -t is given, as llama.cpp's -tb does", () => {
    // Before: -t 1 left prompt batches on every core.
    expect(resolveLoadOptions({ threads: 1 }, {}, {}, false).batchThreads).toBe(1);
    expect(resolveLoadOptions({ threads: 1, threadsBatch: 3 }, {}, {}, false).batchThreads).toBe(3);
    expect(resolveLoadOptions({ threads: 1 }, { LMRUN_THREADS_BATCH: "4" }, {}, false).batchThreads).toBe(1);
    expect(resolveLoadOptions({}, { LMRUN_THREADS_BATCH: "4" }, {}, false).batchThreads).toBe(4);
    // Nothing given: every core (decided when the model loads).
    expect(resolveLoadOptions({}, {}, {}, false).batchThreads).toBeUndefined();
  });

  it("a thread count above the cores gets one warning line naming the flag and the cores", () => {
    expect(threadsAboveCoresWarning([["-t", 2]], 2)).toBeUndefined();
    expect(threadsAboveCoresWarning([["-t", undefined], ["--threads-batch", undefined]], 2)).toBeUndefined();
    const warning = threadsAboveCoresWarning([["-t", 64], ["--threads-batch", 2]], 2);
    expect(warning).toBe("-t 64 asks for more threads than this machine's 2 cores: the extra threads only wait for each other and make every token slower; use 2 or fewer");
    expect(threadsAboveCoresWarning([["-t", 3], ["--threads-batch", 4]], 2)).toMatch(/^-t 3 and --threads-batch 4 ask for more threads/);
  });
});
