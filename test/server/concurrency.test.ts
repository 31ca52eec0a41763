import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type ServeProcess, request, startServe, until } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * Many clients against one `lmrun serve` with 4 slots and a queue of 16 (tiny model): batched
 * greedy answers equal lone ones, a client that goes away frees its slot, and a burst past the
 * queue is answered 503 + Retry-After, never anything else, without the server's memory growing.
 */

let server: ServeProcess;

beforeAll(async () => {
  server = await startServe(["tiny", "--parallel", "4", "--max-queue", "16", "--keep-alive", "-1"]);
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

function generate(prompt: string, numPredict: number, signal?: AbortSignal) {
  return request(`${server.url}/api/generate`, {
    json: { model: "tiny", prompt, stream: false, options: { temperature: 0, seed: 1, num_predict: numPredict } },
    ...(signal ? { signal } : {}),
  });
}

async function metric(name: string): Promise<number> {
  const text = (await request(`${server.url}/metrics`)).text;
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return Number(line?.split(" ").at(-1));
}


describe("lmrun serve: concurrency", () => {
  it("4 clients at once produce exactly what each produces alone (temp 0), decoded in shared batches", async () => {
    const prompts = ["Once upon a time", "The little dog", "Lily went to the park", "One day a boy named"];
    const alone: string[] = [];
    for (const prompt of prompts) alone.push((await generate(prompt, 24)).body.response);
    const together = await Promise.all(prompts.map((prompt) => generate(prompt, 24)));
    expect(together.map((r) => r.body.response)).toEqual(alone);
    // They ran side by side: four different slots.
    expect(new Set(together.map((r) => r.body.lmrun.slot)).size).toBe(4);
    expect(alone.every((text) => text.length > 10)).toBe(true);

    // Again, on slots that hold these prompts: every step decodes the four sequences' tokens in one
    // llama_decode (one sequence trailing by a batch made ~1.33x the calls; a request starting on a
    // used slot used to wait for the others to finish: ~4x).
    const decodesBefore = await metric("lmrun_decode_calls_total");
    const again = await Promise.all(prompts.map((prompt) => generate(prompt, 24)));
    const decodes = (await metric("lmrun_decode_calls_total")) - decodesBefore;
    expect(again.map((r) => r.body.response)).toEqual(alone);
    const generated = again.reduce((sum, r) => sum + r.body.eval_count, 0);
    expect(generated).toBe(4 * 24);
    if (decodesBefore > 0) expect(decodes).toBeLessThanOrEqual(24 + 4); // the shim counts decodes (Linux)
  });

  it("a client that disconnects mid-stream frees its slot at once, and the next request runs", async () => {
    const controllers = [0, 1, 2, 3].map(() => new AbortController());
    const streams = controllers.map(async (controller, i) => {
      const res = await fetch(`${server.url}/api/generate`, {
        method: "POST",
        body: JSON.stringify({ model: "tiny", prompt: `Story ${i}`, options: { num_predict: 500, temperature: 0 } }),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      await reader.read(); // the first piece: it is generating
      controller.abort();
    });
    await until(async () => (await metric("lmrun_busy_slots")) === 4 || controllers.every((c) => c.signal.aborted), "4 busy slots");
    await Promise.allSettled(streams);
    await until(async () => (await metric("lmrun_busy_slots")) === 0, "slots freed after the clients went away", 15_000);
    const generated = await metric("lmrun_generated_tokens_total");
    const next = await generate("After that", 8);
    expect(next.status).toBe(200);
    expect(next.body.eval_count).toBe(8);
    // The aborted ones stopped long before their 500 tokens each.
    expect(generated).toBeLessThan(4 * 500);
    expect(server.log()).toMatch(/POST \/api\/generate 499/);
  });

  it("64 clients against 4 slots and a queue of 16: each completes or gets 503 with Retry-After; memory does not grow over 3 rounds", async () => {
    const rss: number[] = [];
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => generate(`Tale ${i % 8}`, 6)));
      const ok = answers.filter((a) => a.status === 200);
      const busy = answers.filter((a) => a.status === 503);
      expect(ok.length + busy.length).toBe(64);
      expect(ok.length).toBeGreaterThanOrEqual(20);
      for (const a of ok) expect(a.body.eval_count).toBe(6);
      for (const a of busy) {
        expect(Number(a.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect(a.body.error).toMatch(/busy/);
      }
      // Same prompt, same text, whichever slot and batch it ran in.
      const byPrompt = new Map<number, string>();
      answers.forEach((a, i) => {
        if (a.status !== 200) return;
        expect(byPrompt.get(i % 8) ?? a.body.response).toBe(a.body.response);
        byPrompt.set(i % 8, a.body.response);
      });
      rss.push(await metric("lmrun_process_resident_memory_bytes"));
    }
    expect(rss[2]!).toBeLessThan(rss[0]! * 1.1 + 16 * 1024 * 1024);
    const health = await request(`${server.url}/health`);
    expect(health.status).toBe(200);
  });
});
