import fs from "node:fs";
import path from "node:path";
import { ServerClient } from "../../client/http.js";
import { findLoaded, formatPsTable, rowsOf } from "../../client/ps.js";
import { apiKeyFrom, requireServer } from "../../client/target.js";
import type { PsEntry, StreamChunk } from "../../client/wire.js";
import { LmrunError } from "../../errors.js";
import type { CommandContext } from "../context.js";

/** `lmrun ps` and `lmrun stop`: a running server's loaded models (client path: no node-llama-cpp). */

async function withServer<T>(ctx: CommandContext, flags: { server?: string }, use: (client: ServerClient) => Promise<T>): Promise<T> {
  const target = requireServer(flags, ctx.env);
  const client = new ServerClient(target.url, { apiKey: apiKeyFrom(ctx.env), idleTimeoutMs: 30_000 });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

async function loadedModels(client: ServerClient, signal: AbortSignal): Promise<PsEntry[]> {
  const answer = await client.json<{ models?: PsEntry[] }>("GET", "/api/ps", undefined, signal);
  return Array.isArray(answer.models) ? answer.models : [];
}

export async function listLoaded(ctx: CommandContext, flags: { json?: boolean; server?: string }): Promise<void> {
  await withServer(ctx, flags, async (client) => {
    const rows = rowsOf(await loadedModels(client, ctx.signal));
    if (flags.json) ctx.out.json({ server: client.url, models: rows });
    else ctx.out.text(formatPsTable(rows));
  });
}

export async function stopModel(ctx: CommandContext, ref: string, flags: { json?: boolean; server?: string }): Promise<void> {
  await withServer(ctx, flags, async (client) => {
    let real: string | undefined;
    try {
      real = fs.realpathSync(path.resolve(ref));
    } catch {
      real = undefined;
    }
    const entry = findLoaded(await loadedModels(client, ctx.signal), ref, real);
    if (entry === undefined) {
      throw new LmrunError(`${ref} is not loaded on the server at ${client.url}`, { hint: "`lmrun ps` lists the loaded models" });
    }
    // ollama's own way to unload: a generate request with no prompt and keep_alive 0.
    const answer = await client.json<StreamChunk>("POST", "/api/generate", { model: entry.name, keep_alive: 0, stream: false }, ctx.signal);
    if (flags.json) ctx.out.json({ server: client.url, model: entry.name, unloaded: answer.done_reason === "unload" || answer.done === true });
    else ctx.out.info(`unloaded ${entry.name}`);
  });
}
