import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeFileAtomic } from "../../src/fs/atomicWrite.js";
import { InputHistoryFile, parseHistory, pushHistory } from "../../src/chat/inputHistory.js";
import { formatSessionsTable } from "../../src/chat/sessionList.js";
import { newSessionId, SessionStore } from "../../src/chat/sessionStore.js";
import type { Transcript } from "../../src/chat/transcript.js";

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-chat-store-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function session(id: string, updatedAt: string, first: string): Transcript {
  return {
    version: 1,
    id,
    createdAt: updatedAt,
    updatedAt,
    model: { name: "tiny", path: "/models/tiny.gguf" },
    messages: [
      { role: "user", text: first },
      { role: "assistant", text: "reply" },
    ],
  };
}

describe("session store", () => {
  it("saves atomically, lists newest first and finds by id, prefix or latest", async () => {
    const dir = tempDir();
    const store = new SessionStore(path.join(dir, "sessions"));
    expect(await store.list()).toEqual([]);
    expect(await store.find(undefined)).toEqual({ error: "none" });
    await store.save(session("20260101-000000-aaaa", "2026-01-01T00:00:00.000Z", "first chat"));
    await store.save(session("20260102-000000-bbbb", "2026-01-02T00:00:00.000Z", "second   chat\nwith lines"));
    expect(fs.readdirSync(path.join(dir, "sessions")).sort()).toEqual(["20260101-000000-aaaa.json", "20260102-000000-bbbb.json"]);
    const list = await store.list();
    expect(list.map((s) => [s.id, s.messages, s.title])).toEqual([
      ["20260102-000000-bbbb", 2, "second chat with lines"],
      ["20260101-000000-aaaa", 2, "first chat"],
    ]);
    expect(await store.find(undefined)).toMatchObject({ id: "20260102-000000-bbbb" });
    expect(await store.find("20260101")).toMatchObject({ id: "20260101-000000-aaaa" });
    expect(await store.find("2026010")).toEqual({ error: "ambiguous", matches: ["20260102-000000-bbbb", "20260101-000000-aaaa"] });
    expect(await store.find("nope")).toEqual({ error: "unknown" });
    expect((await store.load("20260101-000000-aaaa")).messages[0]).toEqual({ role: "user", text: "first chat" });
    expect(formatSessionsTable(list)).toMatch(/^ID\s+UPDATED\s+MODEL\s+MESSAGES\s+FIRST MESSAGE\n20260102-000000-bbbb\s+2026-01-02 00:00:00\s+tiny\s+2\s+second chat/);
  });

  it("skips a corrupt session file instead of failing the listing", async () => {
    const dir = tempDir();
    const store = new SessionStore(dir);
    await store.save(session("20260101-000000-aaaa", "2026-01-01T00:00:00.000Z", "ok"));
    fs.writeFileSync(path.join(dir, "20260103-000000-cccc.json"), '{"messages": [');
    expect((await store.list()).map((s) => s.id)).toEqual(["20260101-000000-aaaa"]);
  });

  it("refuses ids that could escape the directory", () => {
    expect(() => new SessionStore("/tmp/x").fileFor("../etc/passwd")).toThrow(/invalid session id/);
    expect(newSessionId(new Date("2026-11-25T14:48:53Z"))).toMatch(/^20261125-144853-[0-9a-f]{4}$/);
  });

  it("replaces files whole and leaves no temp files behind", async () => {
    const dir = tempDir();
    const file = path.join(dir, "nested", "f.json");
    await writeFileAtomic(file, "one");
    await writeFileAtomic(file, "two");
    expect(fs.readFileSync(file, "utf8")).toBe("two");
    expect(fs.readdirSync(path.dirname(file))).toEqual(["f.json"]);
  });
});

describe("input history", () => {
  it("keeps multi-line entries, drops duplicates and survives junk lines", async () => {
    let entries = pushHistory([], "one");
    entries = pushHistory(entries, "two\nlines");
    entries = pushHistory(entries, "one");
    entries = pushHistory(entries, "   ");
    expect(entries).toEqual(["two\nlines", "one"]);
    const file = new InputHistoryFile(path.join(tempDir(), "history"));
    expect(await file.load()).toEqual([]);
    await file.save(entries);
    expect(await file.load()).toEqual(entries);
    expect(parseHistory('"a"\nnot json\n42\n"b"\n')).toEqual(["a", "b"]);
  });
});

describe("resuming", () => {
  it("keeps the saved sampling except what flags set now", async () => {
    const { resumedSampling } = await import("../../src/chat/resume.js");
    const resolved = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, maxTokens: 512, seed: undefined };
    const saved = { temperature: 0, topK: 5, maxTokens: 64, seed: 7 };
    expect(resumedSampling(resolved, { topK: true }, saved)).toEqual({ ...resolved, temperature: 0, maxTokens: 64, seed: 7 });
    expect(resumedSampling({ ...resolved, seed: 3 }, { seed: true }, saved).seed).toBe(3);
    expect(resumedSampling(resolved, {}, undefined)).toEqual(resolved);
  });

  it("explains when there is nothing to resume", async () => {
    const { findSessionToResume } = await import("../../src/chat/resume.js");
    const store = new SessionStore(tempDir());
    await expect(findSessionToResume(store, undefined)).rejects.toThrow("there are no saved chat sessions to resume");
    await store.save(session("20260101-000000-aaaa", "2026-01-01T00:00:00.000Z", "x"));
    await expect(findSessionToResume(store, "zzz")).rejects.toThrow('no saved session "zzz"');
    expect((await findSessionToResume(store, undefined)).id).toBe("20260101-000000-aaaa");
  });
});
