import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli, tempHome } from "../helpers/cli.js";

const homes: string[] = [];
function home(): string {
  const dir = tempHome("lmrun-chat-cli-");
  homes.push(dir);
  return dir;
}
afterAll(() => {
  for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
});

describe("lmrun chat without a terminal", () => {
  it("says in one line to use lmrun run, and exits 2", async () => {
    const result = await runCli(["chat", "tiny"], { input: "hello\n", home: home() });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      'error: chat needs a terminal (stdin and stdout are not both a TTY). Use `lmrun run MODEL "prompt"` in scripts and pipes\n',
    );
  });

  it("lists sessions as a table and as JSON, newest first", async () => {
    const dir = home();
    const empty = await runCli(["chat", "--sessions"], { home: dir });
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe("no saved chat sessions yet (start one with: lmrun chat MODEL)\n");
    expect((await runCli(["chat", "--sessions", "--json"], { home: dir })).stdout).toBe("[]\n");

    fs.mkdirSync(path.join(dir, "sessions"));
    const write = (id: string, updatedAt: string, text: string) =>
      fs.writeFileSync(
        path.join(dir, "sessions", `${id}.json`),
        JSON.stringify({ version: 1, id, createdAt: updatedAt, updatedAt, model: { name: "tiny" }, messages: [{ role: "user", text }, { role: "assistant", text: "ok" }] }),
      );
    write("20260101-100000-aaaa", "2026-01-01T10:00:00.000Z", "older");
    write("20260102-100000-bbbb", "2026-01-02T10:00:00.000Z", "newer");
    const table = await runCli(["chat", "--sessions"], { home: dir });
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+UPDATED\s+MODEL\s+MESSAGES\s+FIRST MESSAGE$/);
    expect(table.stdout.split("\n")[1]).toMatch(/^20260102-100000-bbbb\s+2026-01-02 10:00:00\s+tiny\s+2\s+newer$/);
    const json = JSON.parse((await runCli(["chat", "--sessions", "--json"], { home: dir })).stdout) as { id: string; messages: number; title: string }[];
    expect(json.map((s) => [s.id, s.messages, s.title])).toEqual([
      ["20260102-100000-bbbb", 2, "newer"],
      ["20260101-100000-aaaa", 2, "older"],
    ]);
  });

  it("refuses --json without --sessions", async () => {
    const result = await runCli(["chat", "tiny", "--json"], { home: home() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error: --json goes with --sessions\./);
  });
});
