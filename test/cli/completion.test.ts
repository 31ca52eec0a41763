import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliPath, runCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-completion-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// `lmrun` on PATH as users have it, running this Node and this checkout.
const binDir = path.join(dir, "bin");
fs.mkdirSync(binDir);
fs.writeFileSync(path.join(binDir, "lmrun"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)} "$@"\n`, { mode: 0o755 });
// A store with one pulled model, so that store names are completed too.
const home = path.join(dir, "home");
const models = path.join(dir, "models");
fs.mkdirSync(path.join(models, "hf", "me", "repo"), { recursive: true });
fs.copyFileSync(path.join(repoRoot, "assets", "models", "stories260K-Q8_0.gguf"), path.join(models, "hf", "me", "repo", "story-Q8_0.gguf"));
fs.writeFileSync(
  path.join(models, "manifest.json"),
  JSON.stringify({ version: 1, files: [{ file: "hf/me/repo/story-Q8_0.gguf", refs: ["hf:me/repo/story-Q8_0.gguf"], size: 1, pulledAt: new Date().toISOString() }] }),
);
const env = { ...process.env, PATH: `${binDir}:${process.env.PATH}`, LMRUN_HOME: home, LMRUN_MODELS: models, NO_COLOR: "1" };

const hasBash = spawnSync("bash", ["--version"]).status === 0;

/**
 * Sources `lmrun completion bash` in a real bash and runs the completion function the way readline
 * does: COMP_LINE/COMP_POINT and COMP_WORDS/COMP_CWORD (split at colons too, as COMP_WORDBREAKS says).
 */
function complete(lines: string[]): string[][] {
  const script = [
    'source <(lmrun completion bash)',
    'complete -p lmrun',
    "ask() {",
    '  COMP_LINE="$1"; COMP_POINT=${#1}',
    '  local IFS=$\' \\t\\n\'',
    '  read -ra COMP_WORDS <<<"${1//:/ : }"',
    '  [[ "$1" =~ [[:space:]]$ ]] && COMP_WORDS+=("")',
    "  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))",
    "  COMPREPLY=()",
    "  _lmrun",
    '  printf "%s\\n" "${COMPREPLY[*]}"',
    "}",
    ...lines.map((line) => `ask ${JSON.stringify(line)}`),
  ].join("\n");
  const out = execFileSync("bash", ["-c", script], { env, encoding: "utf8" });
  const [registration, ...answers] = out.trimEnd().split("\n");
  expect(registration).toBe("complete -o default -F _lmrun lmrun");
  return answers.map((a) => (a === "" ? [] : a.split(" ")));
}

describe.skipIf(!hasBash)(`lmrun completion bash, sourced in bash${hasBash ? "" : " [skipped: no bash]"}`, () => {
  it("completes commands, flags, flag values, setting names and model names", () => {
    const [commands, r, gpuFlags, gpuValues, qw, colon, tinyAfterFlag, store, configSubs, keys, globals, prompt, shells, benchSecond] = complete([
      "lmrun ",
      "lmrun r",
      "lmrun run --gpu",
      "lmrun run --gpu ",
      "lmrun run qwen2.5:0.",
      "lmrun pull llama3.2:",
      "lmrun run -n 5 ti",
      "lmrun show hf:me/",
      "lmrun config ",
      "lmrun config set te",
      "lmrun --verbose ls --",
      "lmrun run tiny Once",
      "lmrun completion ",
      "lmrun bench tiny qwen3:0",
    ]);
    expect(commands).toEqual(expect.arrayContaining(["run", "chat", "pull", "ls", "list", "rm", "show", "verify", "config", "bench", "info", "perplexity", "completion"]));
    expect(r.sort()).toEqual(["rm", "rpc-server", "run"]);
    expect(gpuFlags.sort()).toEqual(["--gpu", "--gpu-layers"]);
    expect(gpuValues).toEqual(["auto", "cuda", "vulkan", "metal", "cpu"]);
    // After a colon readline replaces only what follows it, so that is what is offered.
    expect(qw).toEqual(["0.5b", "0.5b-instruct"]);
    expect(colon).toEqual(expect.arrayContaining(["1b", "3b"]));
    expect(tinyAfterFlag).toContain("tiny");
    expect(store).toEqual(["me/repo/story-Q8_0.gguf"]);
    expect(configSubs).toEqual(["list", "get", "set", "unset", "path"]);
    expect(keys).toEqual(["temperature"]);
    expect(globals).toEqual(["--json", "--verbose", "--quiet", "--help"]);
    expect(prompt).toEqual([]);
    expect(shells).toEqual(["bash", "zsh", "fish"]);
    expect(benchSecond).toEqual(["0.6b"]);
  });

  it("lists model names without loading llama.cpp, ink or the charting code", () => {
    const trace = path.join(dir, "imports.txt");
    const out = execFileSync(process.execPath, ["--import", path.join(repoRoot, "test/helpers/trace-imports.mjs"), cliPath, "completion", "--list-models"], {
      env: { ...env, LMRUN_TRACE_IMPORTS: trace },
      encoding: "utf8",
    });
    expect(out.split("\n")).toEqual(expect.arrayContaining(["tiny", "qwen2.5:0.5b", "hf:me/repo/story-Q8_0.gguf"]));
    const imported = fs.readFileSync(trace, "utf8").split("\n");
    for (const heavy of ["node-llama-cpp", "ink", "react", "vega", "vega-lite", "@resvg/resvg-js"]) expect(imported).not.toContain(heavy);
  });
});

describe("lmrun completion zsh and fish", () => {
  it("prints scripts that name every command; a wrong shell is a usage error", async () => {
    const zsh = await runCli(["completion", "zsh"]);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef lmrun/);
    expect(zsh.stdout).toContain("bashcompinit");
    expect(zsh.stdout).toContain("complete -o default -F _lmrun lmrun");
    const fish = await runCli(["completion", "fish"]);
    expect(fish.code).toBe(0);
    expect(fish.stdout).toContain("complete -c lmrun -n '__fish_use_subcommand' -a perplexity");
    expect(fish.stdout).toContain("complete -c lmrun -n '__fish_seen_subcommand_from run' -l gpu -x -a 'auto cuda vulkan metal cpu'");
    expect(fish.stdout).toContain("(lmrun completion --list-models 2>/dev/null)");
    for (const [shell, check] of [["zsh", ["-n"]], ["fish", ["--no-execute"]]] as const) {
      if (spawnSync(shell, ["--version"]).status !== 0) continue; // syntax-checked only where that shell is installed
      const file = path.join(dir, `completion.${shell}`);
      fs.writeFileSync(file, shell === "zsh" ? zsh.stdout : fish.stdout);
      expect(spawnSync(shell, [...check, file]).status).toBe(0);
    }
    const bad = await runCli(["completion", "csh"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: .*'csh'.*bash, zsh, fish/);
  });
});
