import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatPsTable, rowsOf } from "../../src/client/ps.js";
import { chooseServer, normaliseServerUrl } from "../../src/client/target.js";
import { writeServerRecord } from "../../src/config/serverRecord.js";
import { tempHome } from "../helpers/cli.js";

describe("which server a client command uses", () => {
  it("--local wins, then --server, then LMRUN_HOST, then the live record; a dead server's record is ignored", async () => {
    const home = tempHome();
    const env = { LMRUN_HOME: home } as NodeJS.ProcessEnv;
    expect(chooseServer({}, env)).toBeUndefined();
    // A record left by a server that died (SIGKILL): its pid is gone.
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    await writeServerRecord({ pid: Number(dead.stdout), url: "http://127.0.0.1:1", host: "127.0.0.1", port: 1, startedAt: "", version: "0" }, env);
    expect(fs.existsSync(path.join(home, "server.json"))).toBe(true);
    expect(chooseServer({}, env)).toBeUndefined();
    await writeServerRecord({ pid: process.pid, url: "http://127.0.0.1:2", host: "127.0.0.1", port: 2, startedAt: "", version: "0" }, env);
    expect(chooseServer({}, env)).toEqual({ url: "http://127.0.0.1:2", source: "record" });
    expect(chooseServer({}, { ...env, LMRUN_HOST: "127.0.0.1:3" })).toEqual({ url: "http://127.0.0.1:3", source: "env" });
    expect(chooseServer({ server: "http://localhost:4/" }, { ...env, LMRUN_HOST: "x:3" })).toEqual({ url: "http://localhost:4", source: "flag" });
    expect(chooseServer({ local: true }, { ...env, LMRUN_HOST: "x:3" })).toBeUndefined();
    expect(() => chooseServer({ local: true, server: "h:1" }, env)).toThrow(/--local or --server, not both/);
  });

  it("reads addresses as LMRUN_HOST does and refuses https and bad ports", () => {
    expect(normaliseServerUrl(":9000", "--server")).toBe("http://127.0.0.1:9000");
    expect(normaliseServerUrl("[::1]:9000", "--server")).toBe("http://[::1]:9000");
    expect(() => normaliseServerUrl("https://h:1", "--server")).toThrow(/https is not supported/);
    expect(() => normaliseServerUrl("h:99999", "LMRUN_HOST")).toThrow(/LMRUN_HOST/);
  });
});

describe("lmrun ps table", () => {
  it("shows name, size, processor, context, slots and when the model unloads", () => {
    const now = Date.parse("2026-12-06T12:00:00Z");
    const rows = rowsOf(
      [
        { name: "tiny", model: "tiny", size: 1_500_000, size_vram: 0, context_length: 512, expires_at: "2026-12-06T12:04:00Z", lmrun: { path: "/m/tiny.gguf", parallel: 4, busySlots: 1, queued: 0 } },
        { name: "big", model: "big", size: 2e9, size_vram: 1e9, expires_at: "2318-01-01T00:00:00Z" },
      ],
      now,
    );
    expect(rows[0]).toMatchObject({ name: "tiny", path: "/m/tiny.gguf", parallel: 4, busySlots: 1, contextLength: 512, expiresAt: "2026-12-06T12:04:00.000Z" });
    expect(rows[1]!.expiresAt).toBeUndefined();
    expect(formatPsTable(rows, now).split("\n")).toEqual([
      "NAME    SIZE       PROCESSOR          CONTEXT    SLOTS       UNTIL",
      "tiny    1.50 MB    100% CPU           512        1/4 busy    4 minutes from now",
      "big     2.00 GB    50%/50% CPU/GPU    -          -           forever",
      "",
    ]);
  });
});
