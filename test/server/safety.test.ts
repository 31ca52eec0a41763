import http from "node:http";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseKeepAlive } from "../../src/server/duration.js";
import { isUnsafeModelName } from "../../src/server/modelNames.js";
import { bearerMatches, hostAllowed, originAllowed } from "../../src/server/security.js";
import { request, startServe, type ServeProcess } from "./helpers.js";

// Real inference on a shared 2-core machine: generous limits, so a busy machine is slow, not a failure.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

/**
 * Safe by default, checked against a real server with an API key: authentication, model names that
 * are paths or URLs, oversized and malformed bodies, a foreign Host, CORS; and the server still
 * answers correctly afterwards.
 */

const KEY = "serve-test-key-0123456789";
let server: ServeProcess;
const auth = { authorization: `Bearer ${KEY}` };

beforeAll(async () => {
  server = await startServe(["tiny", "--parallel", "1", "--max-body", "64KB"], { env: { LMRUN_API_KEY: KEY } });
}, 120_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

/** A raw request with a chosen Host header (fetch does not let one set it). */
function rawRequest(path: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("lmrun serve: safety", () => {
  it("wants the API key on every endpoint but /health; the key never shows in the log or /metrics", async () => {
    expect((await request(`${server.url}/health`)).status).toBe(200);
    for (const path of ["/v1/models", "/api/tags", "/metrics", "/api/ps"]) {
      const none = await request(`${server.url}${path}`);
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toBe("Bearer");
      expect((await request(`${server.url}${path}`, { headers: { authorization: "Bearer wrong-key-0123456789" } })).status).toBe(401);
      expect((await request(`${server.url}${path}`, { headers: auth })).status).toBe(200);
    }
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
    const refused = await openai.models.list().catch((e) => e);
    expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
    // Anthropic's clients send the key as x-api-key; a wrong one is Anthropic's 401 on its endpoint.
    const message = { model: "tiny", max_tokens: 2, messages: [{ role: "user", content: "Hi" }] };
    expect((await request(`${server.url}/v1/messages`, { json: message, headers: { "x-api-key": KEY } })).status).toBe(200);
    const wrong = await request(`${server.url}/v1/messages`, { json: message, headers: { "x-api-key": "wrong-key-0123456789" } });
    expect([wrong.status, wrong.body]).toEqual([401, { type: "error", error: { type: "authentication_error", message: expect.stringMatching(/x-api-key/) } }]);
    expect((await request(`${server.url}/v1/models`, { headers: { "x-api-key": KEY } })).status).toBe(200);
    const metrics = await request(`${server.url}/metrics`, { headers: auth });
    expect(metrics.text).toContain("lmrun_requests_total");
    expect(metrics.text).not.toContain(KEY);
    expect(server.log()).not.toContain(KEY);
  });

  it("model names that are paths, .., absolute names or URLs are 404 and never opened", async () => {
    const names = [
      "/etc/passwd",
      "../../assets/models/stories260K-Q8_0.gguf",
      "./assets/models/stories260K-Q8_0.gguf",
      "assets/models/stories260K-Q8_0.gguf",
      "stories260K-f32.gguf",
      "https://example.com/model.gguf",
      "file:///etc/passwd",
      "hf:someone/some-repo:Q4_K_M",
      "~/model.gguf",
      "C:\\models\\x.gguf",
    ];
    for (const model of names) {
      const openai = await request(`${server.url}/v1/completions`, { headers: auth, json: { model, prompt: "x", max_tokens: 1 } });
      expect(openai.status, model).toBe(404);
      expect(openai.body.error.code).toBe("model_not_found");
      const ollama = await request(`${server.url}/api/generate`, { headers: auth, json: { model, prompt: "x", stream: false } });
      expect(ollama.status, model).toBe(404);
      expect(typeof ollama.body.error).toBe("string");
    }
    expect(server.log()).not.toMatch(/loaded (?!tiny)/);
  });

  it("oversized bodies are 413, malformed JSON and wrong types are 400 naming the field", async () => {
    const big = await request(`${server.url}/v1/completions`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ model: "tiny", prompt: "x".repeat(100_000) }) });
    expect(big.status).toBe(413);
    // The connection closes: reading on to keep it alive would take in whatever the client sends.
    expect(big.headers.get("connection")).toBe("close");
    const bom = await request(`${server.url}/v1/completions`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: `\uFEFF${JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 1 })}` });
    expect(bom.status).toBe(200);
    const malformed = await request(`${server.url}/v1/chat/completions`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{not json" });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toMatch(/not valid JSON/);
    const cases: Array<[string, object, string]> = [
      ["/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: 5 }] }, "messages[0].content"],
      ["/v1/chat/completions", { model: "tiny", messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
      ["/v1/completions", { model: 7, prompt: "x" }, "model"],
      ["/v1/completions", { model: "tiny", prompt: "x", max_tokens: -5 }, "max_tokens"],
      ["/v1/completions", { model: "tiny", prompt: "x", temperature: "hot" }, "temperature"],
      ["/v1/completions", { model: "tiny", prompt: "x", max_tokens: 1e9 }, "max_tokens"],
    ];
    for (const [path, body, param] of cases) {
      const r = await request(`${server.url}${path}`, { headers: auth, json: body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.param).toBe(param);
      expect(r.body.error.message).toContain(param);
    }
    const ollama = await request(`${server.url}/api/chat`, { headers: auth, json: { model: "tiny", messages: [{ role: "user", content: "x" }], options: { num_predict: "many" } } });
    expect(ollama.status).toBe(400);
    expect(ollama.body.error).toContain("options.num_predict");
  });

  it("a foreign Host header is refused (DNS rebinding); loopback names are fine", async () => {
    const foreign = await rawRequest("/api/tags", { host: "attacker.example:80", ...auth });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatch(/not allowed/);
    for (const host of ["localhost", "127.0.0.1:1234", "[::1]:5", "::1"]) expect((await rawRequest("/api/tags", { host, ...auth })).status, host).toBe(200);
  });

  it("sends no CORS headers unless --cors names the origin, and refuses other sites' pages outright", async () => {
    // A page's no-cors POST is carried out though the page cannot read the answer: refused before it runs.
    const r = await rawRequest("/v1/models", { host: "127.0.0.1", origin: "https://evil.example", ...auth });
    expect(r.status).toBe(403);
    expect(r.headers["access-control-allow-origin"]).toBeUndefined();
    expect(JSON.parse(r.body).error.code).toBe("origin_not_allowed");
    // The server's own origin is not a foreign page.
    const url = new URL(server.url);
    expect((await rawRequest("/v1/models", { host: url.host, origin: `http://${url.host}`, ...auth })).status).toBe(200);
    const preflight = await request(`${server.url}/v1/models`, { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "GET" } });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("still answers correctly after all that", async () => {
    const r = await request(`${server.url}/v1/completions`, { headers: auth, json: { model: "tiny", prompt: "Once upon a time", max_tokens: 8, temperature: 0 } });
    expect(r.status).toBe(200);
    expect(r.body.usage.completion_tokens).toBe(8);
    expect(r.body.choices[0].text.length).toBeGreaterThan(0);
  });

  it("refuses a model that does not fit in the allowed memory, with a clear error", async () => {
    const small = await startServe(["--max-ram", "1MB"]);
    try {
      const r = await request(`${small.url}/api/generate`, { json: { model: "tiny", prompt: "x", stream: false } });
      expect(r.status).toBe(507);
      expect(r.body.error).toMatch(/needs about .* of RAM/);
    } finally {
      expect(await small.stop()).toBe(0);
    }
  });
});

describe("safety rules (units)", () => {
  it("names that are never servable", () => {
    for (const name of ["", "/x", "../x", "a/../b", "~/x", "./x", "x.gguf", "C:/x", "C:\\x", "http://h/x", "file:///x", "a\\b"]) expect(isUnsafeModelName(name), name).toBe(true);
    for (const name of ["tiny", "qwen2.5:0.5b", "smollm2:135m@Q8_0", "hf:user/repo:Q4_K_M"]) expect(isUnsafeModelName(name), name).toBe(false);
  });

  it("web pages' origins: only --cors ones and the server's own", () => {
    const none = { apiKey: undefined, bindHost: "127.0.0.1", allowHosts: [], corsOrigins: [] };
    expect(originAllowed(undefined, "127.0.0.1:11488", none)).toBe(true); // not a browser
    expect(originAllowed("https://evil.example", "127.0.0.1:11488", none)).toBe(false);
    expect(originAllowed("http://localhost:3000", "127.0.0.1:11488", none)).toBe(false);
    expect(originAllowed("null", "127.0.0.1:11488", none)).toBe(false);
    expect(originAllowed("http://127.0.0.1:11488", "127.0.0.1:11488", none)).toBe(true);
    const cors = { ...none, corsOrigins: ["http://localhost:3000"] };
    expect(originAllowed("http://localhost:3000", "127.0.0.1:11488", cors)).toBe(true);
    expect(originAllowed("http://localhost:3001", "127.0.0.1:11488", cors)).toBe(false);
    expect(originAllowed("https://anything.example", "127.0.0.1:11488", { ...none, corsOrigins: ["*"] })).toBe(true);
  });

  it("bearer keys compare exactly", () => {
    expect(bearerMatches("Bearer abcdefgh", "abcdefgh")).toBe(true);
    expect(bearerMatches("bearer  abcdefgh ", "abcdefgh")).toBe(true);
    expect(bearerMatches("Bearer abcdefg", "abcdefgh")).toBe(false);
    expect(bearerMatches("abcdefgh", "abcdefgh")).toBe(false);
    expect(bearerMatches(undefined, "abcdefgh")).toBe(false);
  });

  it("Host rules for loopback and network binds", () => {
    const loop = { apiKey: undefined, bindHost: "127.0.0.1", allowHosts: [], corsOrigins: [] };
    expect(hostAllowed("localhost:11488", loop)).toBe(true);
    expect(hostAllowed("app.localhost", loop)).toBe(true);
    expect(hostAllowed("192.168.1.5:11488", loop)).toBe(false);
    expect(hostAllowed("evil.com", loop)).toBe(false);
    expect(hostAllowed(undefined, loop)).toBe(false);
    expect(hostAllowed("evil.com", { ...loop, allowHosts: ["evil.com"] })).toBe(true);
    const lan = { ...loop, bindHost: "0.0.0.0" };
    expect(hostAllowed("192.168.1.5:11488", lan)).toBe(true);
    expect(hostAllowed("evil.com", lan)).toBe(false);
  });

  it("keep-alive durations as ollama reads them", () => {
    expect(parseKeepAlive("5m")).toBe(300_000);
    expect(parseKeepAlive("1h30m")).toBe(5_400_000);
    expect(parseKeepAlive(30)).toBe(30_000);
    expect(parseKeepAlive("0")).toBe(0);
    expect(parseKeepAlive("-1")).toBe(-1);
    expect(parseKeepAlive(-5)).toBe(-1);
    expect(parseKeepAlive("soon")).toBeUndefined();
    expect(parseKeepAlive("5x")).toBeUndefined();
  });
});
