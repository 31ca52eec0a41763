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
    // The way out includes lmrun's own repair (config set/unset keep the broken file aside).
    expect(lines[0]).toMatch(/Fix it by hand, or run `lmrun config set KEY VALUE` or `lmrun config unset KEY`, which keep the broken file aside and start a new one$/);
  });

  it("a value that breaks its rule, edited into the file by hand, is one line naming the key and the fix (exit 2)", async () => {
    const home = tempHome();
    const file = path.join(home, "config.json");
    // Before: a TypeError with a stack trace, "ver" on stdout, 113,118 tokens for -3, and an error naming a flag never typed.
    const cases: Array<[object, RegExp]> = [
      [{ temperature: "hot" }, /the setting temperature in .*config\.json is "hot": expected a number/],
      [{ threads: "many" }, /the setting threads in .*config\.json is "many": expected a whole number/],
      [{ maxTokens: -3 }, /the setting maxTokens in .*config\.json is -3: must be between 1 and/],
      [{ gpu: process.platform === "darwin" ? "cuda" : "metal" }, /the setting gpu in .*config\.json is "(metal|cuda)": (Metal|CUDA) /],
    ];
    for (const [settings, message] of cases) {
      fs.writeFileSync(file, JSON.stringify(settings));
      const result = await runCli(["run", "tiny", "hi", "-n", "2"], { home });
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      const lines = result.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(lines[0]).toMatch(/lmrun config unset \w+`$/);
    }
    // config itself still shows and mends the file.
    expect((await runCli(["config", "get", "gpu"], { home })).code).toBe(0);
    expect((await runCli(["config", "unset", "gpu"], { home })).code).toBe(0);
    expect((await runCli(["run", "tiny", "hi", "-n", "2"], { home })).code).toBe(0);
  });

  it("LMRUN_* variables follow the same rules, and config set refuses what they refuse", async () => {
    const home = tempHome();
    for (const [name, value, message] of [
      ["LMRUN_GPU", "foo", /LMRUN_GPU=foo is not valid: expected one of auto, cuda, vulkan, metal, cpu/],
      ["LMRUN_CTX", "abc", /LMRUN_CTX=abc is not valid: expected a whole number/],
      ["LMRUN_THREADS", "0", /LMRUN_THREADS=0 is not valid: must be between 1 and 1024/],
    ] as const) {
      const commands = [["run", "tiny", "hi", "-n", "2"], ...(name === "LMRUN_CTX" ? [] : [["bench", "tiny", "-r", "1", "-p", "8", "-n", "4"]])];
      for (const command of commands) {
        const result = await runCli(command, { home, env: { [name]: value } });
        expect(result.code).toBe(2);
        expect(result.stderr.trim()).toMatch(message);
        expect(result.stderr.trim().split("\n")).toHaveLength(1);
      }
    }
    for (const [key, value] of [["temperature", "0x10"], ["gpu", process.platform === "darwin" ? "cuda" : "metal"], ["maxTokens", "0"]]) {
      const result = await runCli(["config", "set", key!, value!], { home });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`invalid value for ${key}`));
    }
    expect((await runCli(["config", "set", "temperature", "1e-1"], { home })).code).toBe(0);
    expect(await readSettings({ LMRUN_HOME: home })).toEqual({ temperature: 0.1 });
  });
});
