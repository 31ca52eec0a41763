import { LmrunError, UsageError } from "../errors.js";
import type { ChatSampling } from "../engine/chatTypes.js";
import type { SessionStore } from "./sessionStore.js";
import type { Transcript } from "./transcript.js";

/** `--resume [ID]`: the session to continue, or a usage error that says how to find one. */
export async function findSessionToResume(store: SessionStore, id: string | undefined): Promise<Transcript> {
  const found = await store.find(id);
  if ("error" in found) {
    if (found.error === "none") throw new UsageError("there are no saved chat sessions to resume", "Start one with: lmrun chat MODEL");
    if (found.error === "ambiguous") throw new UsageError(`session id "${id}" matches ${found.matches!.join(", ")}`, "Give more of the id");
    throw new UsageError(`no saved session "${id}"`, "List them with: lmrun chat --sessions");
  }
  try {
    return await store.load(found.id);
  } catch (error) {
    throw new LmrunError(`cannot read session ${found.id}: ${(error as Error).message}`, { hint: `Check or delete ${found.path}` });
  }
}

/** A resumed session keeps its sampling, except what flags set now (`given` marks those fields). */
export function resumedSampling(resolved: ChatSampling, given: Partial<Record<keyof ChatSampling, boolean>>, saved: Partial<ChatSampling> | undefined): ChatSampling {
  if (!saved) return resolved;
  const result = { ...resolved };
  for (const key of Object.keys(resolved) as (keyof ChatSampling)[]) {
    if (!given[key] && saved[key] !== undefined) (result as Record<string, unknown>)[key] = saved[key];
  }
  if (!given.seed) result.seed = saved.seed;
  return result;
}
