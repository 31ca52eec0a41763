import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, tempHome } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

/**
 * node-llama-cpp checks its prebuilt binary in a child process before loading it (~0.5 s). lmrun
 * remembers a passed check (engine/bindingCheck.ts): the first start runs it, later ones answer from
 * LMRUN_HOME/binding-check.json, with the same output. Counted with a preload that logs real forks.
 */
const linux = process.platform === "linux"; // node-llama-cpp tests prebuilt binaries only on Linux (and GPU builds on Windows)
const hook = path.join(repoRoot, "test", "helpers", "log-binding-checks.cjs");

describe.skipIf(!linux)(`remembered binary checks${linux ? "" : " [skipped: node-llama-cpp runs them on Linux]"}`, () => {
  it("runs the check once per binary, then answers it from memory; a damaged record runs it again", async () => {
    const home = tempHome();
    const log = path.join(home, "forks.log");
    const env = { NODE_OPTIONS: `--require ${hook}`, LMRUN_TEST_FORK_LOG: log };
    const forks = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0);
    const args = ["run", "tiny", "Once upon a time", "--temp", "0", "-n", "8", "--local"];

    const first = await runCli(args, { home, env });
    expect(first.code).toBe(0);
    expect(forks()).toBe(1);
    const record = JSON.parse(fs.readFileSync(path.join(home, "binding-check.json"), "utf8"));
    expect(record.version).toBe(1);
    expect(Object.keys(record.passed)).toHaveLength(1);

    const second = await runCli(args, { home, env });
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(forks()).toBe(1);

    fs.writeFileSync(path.join(home, "binding-check.json"), "{not json");
    const third = await runCli(args, { home, env: { ...env } });
    expect(third.code).toBe(0);
    expect(third.stdout).toBe(first.stdout);
    expect(forks()).toBe(2);

    const always = await runCli(args, { home, env: { ...env, LMRUN_BINDING_CHECK: "always" } });
    expect(always.code).toBe(0);
    expect(forks()).toBe(3);
  }, 120_000);

  it("a process started as `node --input-type=module -e` runs the check too (its child does not get the eval)", () => {
    // fork() passes on process.execArgv: the check's child used to run the eval's code instead, so every binary
    // failed and no model loaded (seen first in a test that starts node so, on a fresh LMRUN_HOME).
    const home = tempHome();
    const script = `
      const { loadModel } = await import(${JSON.stringify(path.join(repoRoot, "dist", "engine", "model.js"))});
      const loaded = await loadModel(${JSON.stringify(path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf"))}, { gpu: "cpu", gpuLayers: 0, contextSize: 256, threads: 1 });
      console.log(loaded.summary.fileName);
      await loaded.dispose();`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, LMRUN_HOME: home }, encoding: "utf8" });
    expect(out.trim()).toBe("stories260K-Q8_0.gguf");
    expect(Object.keys(JSON.parse(fs.readFileSync(path.join(home, "binding-check.json"), "utf8")).passed)).toHaveLength(1);
  }, 120_000);
});
