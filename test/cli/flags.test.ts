import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, tempHome } from "../helpers/cli.js";

/** stderr holds exactly one line, and no llama.cpp log or stack. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/llama_|\n\s+at /);
  return lines[0]!;
}

describe("llama.cpp's flag spellings, -c below llama.cpp's least, tuned settings", () => {
  it("run takes -ngl, -tb, -ctk/-ctv, -n -1 and --seed -1; says when -c was raised and when a tuned setting applied (stderr and --json)", async () => {
    const home = tempHome();
    fs.writeFileSync(path.join(home, "config.json"), JSON.stringify({ tuned: { "stories260K-Q8_0.gguf": { threads: 1, batchSize: 64, measuredAt: "2026-12-01T00:00:00.000Z" } } }));
    const result = await runCli(["run", "tiny", "Once upon a time", "-ngl", "99", "-tb", "1", "-ctk", "f16", "-ctv", "f16", "-n", "-1", "--seed", "-1", "-c", "64", "--json"], { home });
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout);
    expect(out.load).toMatchObject({ contextSize: 256, requestedContextSize: 64, batchThreads: 1, threads: 1, tuned: { threads: 1, batchSize: 64 } });
    expect(out.sampling.maxTokens).toBe(-1);
    expect(out.sampling.seed).toEqual(expect.any(Number));
    expect(out.sampling.seed).toBeGreaterThanOrEqual(0);
    // No limit but the context: it ends when the model stops or the 256 cells are full, never by -n.
    expect(out.promptTokens + out.generatedTokens).toBeLessThanOrEqual(256);
    expect(result.stderr).toContain("warning: -c 64 is below the smallest context llama.cpp makes here: the context holds 256 tokens");
    expect(result.stderr).toContain(
      "note: using threads 1, batch size 64 from `lmrun bench --tune` for stories260K-Q8_0.gguf (flags override it; `lmrun config unset tuned.stories260K-Q8_0.gguf` removes it)",
    );

    // The tuned setting is a setting: listed, read and removed like the others.
    const list = await runCli(["config", "list"], { home });
    expect(list.stdout).toMatch(/^tuned\s+stories260K-Q8_0\.gguf: threads 1, batch size 64$/m);
    expect(JSON.parse((await runCli(["config", "get", "tuned", "--json"], { home })).stdout).value).toMatchObject({ "stories260K-Q8_0.gguf": { threads: 1 } });
    expect((await runCli(["config", "unset", "tuned.stories260K-Q8_0.gguf"], { home })).code).toBe(0);
    expect(JSON.parse((await runCli(["config", "get", "tuned", "--json"], { home })).stdout).value).toBeNull();
  });

  it("a cache type the model cannot hold is one line before anything runs (run; bench prints no table header)", async () => {
    const run = await runCli(["run", "tiny", "hi", "-ctk", "q8_0"]);
    expect(run.code).toBe(2);
    expect(oneLine(run.stderr)).toMatch(/^error: -ctk q8_0 cannot be used with stories260K-Q8_0\.gguf: its blocks of 32 do not divide the model's key head size of 8/);
    const bench = await runCli(["bench", "tiny", "-ctk", "q8_0", "-p", "0", "-n", "4", "-r", "1"]);
    expect(bench.code).toBe(2);
    expect(bench.stdout).toBe("");
    expect(oneLine(bench.stderr)).toMatch(/-ctk q8_0 cannot be used with stories260K-Q8_0\.gguf/);
  });

  it("--help lists the llama.cpp spellings; a misspelt flag's suggestion is on the error's line", async () => {
    for (const command of ["run", "chat", "perplexity"]) {
      const help = await runCli([command, "--help"]);
      expect(help.stdout).toContain("llama.cpp spellings: -ngl = --gpu-layers");
      expect(help.stdout).toContain("-tb = --threads-batch");
    }
    expect((await runCli(["bench", "--help"])).stdout).toContain("-ub = --ubatch-size");
    const typo = await runCli(["run", "tiny", "--tmep", "0", "hi"]);
    expect(typo.code).toBe(2);
    expect(oneLine(typo.stderr)).toBe("error: unknown option '--tmep' (Did you mean --temp?) (see: lmrun run --help)");
    const command = await runCli(["rnu"]);
    expect(oneLine(command.stderr)).toBe("error: unknown command 'rnu' (Did you mean run?)");
  });
});

describe("settings that cannot work, and a settings file that is not JSON", () => {
  it("config set modelsDir refuses a file", async () => {
    const result = await runCli(["config", "set", "modelsDir", "/etc/passwd"]);
    expect(result.code).toBe(2);
    expect(oneLine(result.stderr)).toBe("error: invalid value for modelsDir: /etc/passwd is a file, not a directory");
  });

  it("broken JSON: every command names the file and the problem; config list/path still work and set/unset repair it, keeping the old text", async () => {
    const home = tempHome();
    const file = path.join(home, "config.json");
    fs.writeFileSync(file, '{ "threads": 2, oops }');
    const ls = await runCli(["ls"], { home });
    expect(ls.code).toBe(1);
    expect(oneLine(ls.stderr)).toMatch(new RegExp(`^error: cannot read the settings file ${file}: .*JSON.*\\. Fix it by hand, or run \`lmrun config set`));
    const list = await runCli(["config", "list"], { home });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^temperature\s+\(default: 0\.8\)$/m);
    expect(oneLine(list.stderr)).toMatch(new RegExp(`^warning: cannot read the settings file ${file}: .*; showing the defaults$`));
    expect((await runCli(["config", "path"], { home })).stdout).toBe(`${file}\n`);

    const unset = await runCli(["config", "unset", "threads"], { home });
    expect(unset.code, unset.stderr).toBe(0);
    expect(oneLine(unset.stderr)).toMatch(new RegExp(`^warning: the settings file ${file} was not valid \\(.*\\): it was kept as ${file}\\.broken-.* and a new one started$`));
    const kept = fs.readdirSync(home).filter((f) => f.startsWith("config.json.broken-"));
    expect(kept).toHaveLength(1);
    expect(fs.readFileSync(path.join(home, kept[0]!), "utf8")).toBe('{ "threads": 2, oops }');
    const after = await runCli(["config", "list"], { home });
    expect(after.code).toBe(0);
    expect(after.stderr).toBe("");
  });
});

describe("--json-schema takes only what the grammar can enforce", () => {
  it("an unknown type and an unsupported keyword are usage errors naming them", async () => {
    const home = tempHome();
    const write = (name: string, schema: object) => {
      const file = path.join(home, name);
      fs.writeFileSync(file, JSON.stringify(schema));
      return file;
    };
    const foo = await runCli(["run", "tiny", "hi", "--json-schema", write("foo.json", { type: "foo" })], { home });
    expect(foo.code).toBe(2);
    expect(oneLine(foo.stderr)).toMatch(/--json-schema .*foo\.json: at the top level: type "foo" is not a JSON schema type/);
    const pattern = await runCli(["run", "tiny", "hi", "--json-schema", write("p.json", { type: "object", properties: { id: { type: "string", pattern: "^a" } } })], { home });
    expect(pattern.code).toBe(2);
    expect(oneLine(pattern.stderr)).toMatch(/"pattern" at \/properties\/id cannot be enforced by the grammar/);
    const wrongPlace = await runCli(["run", "tiny", "hi", "--json-schema", write("w.json", { type: "number", minLength: 2 })], { home });
    expect(oneLine(wrongPlace.stderr)).toMatch(/"minLength" at the top level cannot be enforced by the grammar \(it belongs to type string, not number\)/);
  });
});
