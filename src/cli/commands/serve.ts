import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { parseKeepAlive } from "../../server/duration.js";
import type { CommandContext } from "../context.js";
import { addLoadOptions, addSamplingOptions, type LoadFlags, type SamplingFlags } from "../modelOptions.js";
import { collect, parseBytes, parseInteger } from "../parse.js";

export interface ServeFlags extends LoadFlags, SamplingFlags {
  host?: string;
  port?: number;
  parallel?: number;
  keepAlive?: number;
  maxModels?: number;
  maxQueue?: number;
  timeout?: number;
  ssePing?: number;
  apiKey?: string;
  cors?: string[];
  allowHost?: string[];
  logFormat?: "text" | "json";
  maxBody?: number;
  pull?: boolean;
}

function duration(raw: string): number {
  const ms = parseKeepAlive(raw);
  if (ms === undefined) throw new InvalidArgumentError(`"${raw}" is not a duration (e.g. 5m, 30s, 1h, -1 for forever, 0)`);
  return ms;
}

function logFormat(raw: string): "text" | "json" {
  if (raw !== "text" && raw !== "json") throw new InvalidArgumentError("use text or json");
  return raw;
}

export function registerServe(program: Command, ctx: CommandContext): void {
  const command = program
    .command("serve")
    .description("keep models loaded and serve them over HTTP (OpenAI-, ollama- and Anthropic-compatible) to many clients at once")
    .argument("[models...]", "models to load at start (catalogue names, hf: references, .gguf paths, `tiny`); others load on first request")
    .option("--host <host>", "address to listen on (default 127.0.0.1, or LMRUN_HOST's)")
    .option("--port <port>", "port to listen on, 0 for any free one (default 11488, or LMRUN_HOST's)", parseInteger(0, 65535))
    .option("--parallel <n>", "slots per model: requests decoded together in one context (default 4)", parseInteger(1, 256))
    .option("--keep-alive <duration>", "unload a model after this long without requests: 5m, 1h, -1 = never, 0 = at once (default 5m)", duration)
    .option("--max-models <n>", "models loaded at once; the least recently used idle one makes room (default 3)", parseInteger(1, 64))
    .option("--max-queue <n>", "requests that may wait for a slot per model; past it 503 + Retry-After (default 64)", parseInteger(0, 100_000))
    .option("--timeout <duration>", "longest a request may take, waiting included (default 10m; 0 = no limit)", duration)
    .option("--sse-ping <duration>", "a waiting stream gets a keep-alive (an SSE comment, Anthropic's ping event) this often, so proxies keep it open (default 10s)", duration)
    .option("--api-key <key>", "require Authorization: Bearer KEY (or x-api-key: KEY) on every endpoint but /health (LMRUN_API_KEY is better: other users see a flag in ps)")
    .option("--cors <origin>", "allow browser calls from this origin (repeatable, * for any; default: no CORS headers)", collect)
    .option("--allow-host <name>", "also answer requests whose Host header is this name (repeatable, * for any)", collect)
    .option("--log-format <format>", "access log on stderr: text or json (default text)", logFormat)
    .option("--max-body <size>", "largest request body (default 8MB)", parseBytes);
  // With --rpc, serve stays the server users see and runs its models in a child it supervises (actions/serve.ts).
  addSamplingOptions(addLoadOptions(command, { inProcess: () => true }), "-1, for requests that name none");
  command.action(async (models: string[], flags: ServeFlags) => {
    const { serveCommand } = await import("../actions/serve.js");
    await serveCommand(ctx, models, flags);
  });
}
