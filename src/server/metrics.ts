import client from "prom-client";
import type { ModelPool } from "../engine/scheduler/modelPool.js";
import { threadpoolStatus } from "../engine/threadpool.js";

/**
 * The server's Prometheus metrics (prom-client, its own registry: nothing global). Names follow
 * Prometheus conventions under `lmrun_`; the API key and request contents never appear in labels.
 */
export class Metrics {
  readonly registry = new client.Registry();
  private readonly requests: client.Counter<"endpoint" | "status">;
  private readonly promptTokens: client.Counter<"model">;
  private readonly generatedTokens: client.Counter<"model">;
  private readonly cachedTokens: client.Counter<"model">;
  private readonly ttft: client.Histogram<"model">;
  private readonly duration: client.Histogram<"endpoint">;

  constructor(pool: ModelPool) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: "lmrun_" });
    this.requests = new client.Counter({ name: "lmrun_requests_total", help: "HTTP requests answered, by endpoint and status", labelNames: ["endpoint", "status"], registers });
    this.promptTokens = new client.Counter({ name: "lmrun_prompt_tokens_total", help: "Prompt tokens of completed requests", labelNames: ["model"], registers });
    this.cachedTokens = new client.Counter({ name: "lmrun_prompt_tokens_cached_total", help: "Prompt tokens reused from a slot's cache", labelNames: ["model"], registers });
    this.generatedTokens = new client.Counter({ name: "lmrun_generated_tokens_total", help: "Generated tokens", labelNames: ["model"], registers });
    this.ttft = new client.Histogram({
      name: "lmrun_time_to_first_token_seconds",
      help: "From a request's slot to its first token (prompt evaluation)",
      labelNames: ["model"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.duration = new client.Histogram({
      name: "lmrun_request_duration_seconds",
      help: "From a request's arrival to the end of its answer",
      labelNames: ["endpoint"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    new client.Gauge({
      name: "lmrun_queue_depth",
      help: "Requests waiting for a slot",
      registers,
      collect() {
        this.set(pool.list().reduce((sum, e) => sum + e.scheduler.queued, 0));
      },
    });
    new client.Gauge({
      name: "lmrun_busy_slots",
      help: "Slots generating now",
      registers,
      collect() {
        this.set(pool.list().reduce((sum, e) => sum + e.scheduler.busySlots, 0));
      },
    });
    new client.Gauge({
      name: "lmrun_slots",
      help: "Slots of the loaded models",
      registers,
      collect() {
        this.set(pool.list().reduce((sum, e) => sum + e.scheduler.parallel, 0));
      },
    });
    // As llama-server's llamacpp:n_decode_total: generated tokens / decode calls is how well requests share batches.
    let decodesSeen = 0;
    new client.Counter({
      name: "lmrun_decode_calls_total",
      help: "llama_decode calls, every model (counted by lmrun's native threadpool module; 0 where it is not loaded)",
      registers,
      collect() {
        const decodes = threadpoolStatus().decodes;
        if (decodes > decodesSeen) this.inc(decodes - decodesSeen);
        decodesSeen = decodes;
      },
    });
    new client.Gauge({
      name: "lmrun_loaded_models",
      help: "Models loaded now",
      registers,
      collect() {
        this.set(pool.list().length);
      },
    });
  }

  request(endpoint: string, status: number, seconds: number): void {
    this.requests.inc({ endpoint, status: String(status) });
    this.duration.observe({ endpoint }, seconds);
  }

  generation(model: string, counts: { promptTokens: number; cachedPromptTokens: number; generatedTokens: number; ttftMs: number | null }): void {
    this.promptTokens.inc({ model }, counts.promptTokens);
    this.cachedTokens.inc({ model }, counts.cachedPromptTokens);
    this.generatedTokens.inc({ model }, counts.generatedTokens);
    if (counts.ttftMs !== null) this.ttft.observe({ model }, counts.ttftMs / 1000);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
