import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readSettings } from "../../src/config/config.js";
import { runCli, tempHome } from "../helpers/cli.js";

describe("settings, read without conf", () => {
  it("reads what `lmrun config set` (conf) wrote, and nothing when there is no file", async () => {
    const home = tempHome();
    expect(await readSettings({ LMRUN_HOME: home })).toEqual({});
    expect((await runCli(["config", "set", "threads", "3"], { home })).code).toBe(0);
    expect((await runCli(["config", "set", "defaultModel", "tiny"], { home })).code).toBe(0);
    expect(await readSettings({ LMRUN_HOME: home })).toEqual({ threads: 3, defaultModel: "tiny" });
    expect((await runCli(["config", "get", "threads"], { home })).stdout.trim()).toBe("3");
  });

  it("a corrupt settings file is one line naming the file, exit 1, for every command that reads it", async () => {
    const home = tempHome();
    fs.writeFileSync(path.join(home, "config.json"), "{ threads: 3");
    await expect(readSettings({ LMRUN_HOME: home })).rejects.toThrow(/cannot read the settings file/);
    const result = await runCli(["run", "tiny", "hi", "-n", "2"], { home });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(path.join(home, "config.json"));
    expect(lines[0]).toMatch(/Fix or delete it$/);
  });
});
