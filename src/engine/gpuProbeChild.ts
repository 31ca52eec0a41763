/**
 * Child process of the GPU check (gpuCheck.ts): loads a tiny model fully on one backend and
 * generates a few tokens. Exit 0 and {"ok":true} on stdout when the backend really computes;
 * anything else (an abort inside llama.cpp included) marks the backend as failing.
 * Usage: node gpuProbeChild.js <cuda|vulkan|metal|cpu> <model.gguf>
 */
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";
const [backend, modelPath] = process.argv.slice(2);

async function probe(): Promise<void> {
  if (!backend || !modelPath) throw new Error("usage: gpuProbeChild.js BACKEND MODEL");
  const { getLlama, LlamaLogLevel } = await loadNodeLlamaCpp();
  const llama = await getLlama({
    gpu: backend === "cpu" ? false : (backend as "cuda" | "vulkan" | "metal"),
    build: "never",
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`llama.cpp ${level}: ${message.trimEnd()}\n`),
  });
  const expected = backend === "cpu" ? false : backend;
  if (llama.gpu !== expected) throw new Error(`the ${backend} backend did not load (got ${String(llama.gpu)})`);
  const model = await llama.loadModel({ modelPath, gpuLayers: "max" });
  const context = await model.createContext({ contextSize: 128, batchSize: 32, threads: 1 });
  const sequence = context.getSequence();
  let generated = 0;
  for await (const token of sequence.evaluate(model.tokenize("Once upon a time"), { temperature: 0 })) {
    void token;
    generated += 1;
    if (generated >= 4) break;
  }
  process.stdout.write(`${JSON.stringify({ ok: generated > 0, backend: llama.gpu, generated })}\n`);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

probe().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`probe error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
