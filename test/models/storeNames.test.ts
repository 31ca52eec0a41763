import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, tempHome } from "../helpers/cli.js";
import { serveSharedModelsPerTest, withoutProxies } from "../helpers/hfServer.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const Q8 = "stories260K-Q8_0.gguf";
const Q4 = "stories260K-Q4_0.gguf";

/** stderr holds exactly one line (the error), no stack, no raw errno text. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/ENOENT|EISDIR|\n\s+at /);
  return lines[0]!;
}

describe.skipIf(!hasShared)(`what the store shows is what it answers to; damaged files are never good; pulls report each model (${hasShared ? "shared models" : sharedSkipReason})`, () => {
  const served = serveSharedModelsPerTest(path.dirname(sharedModel(Q8)));
  const env = () => ({ ...withoutProxies, HF_ENDPOINT: served.hf.url });
  const cli = (args: string[], extra: { cwd?: string; env?: Record<string, string | undefined> } = {}) =>
    runCli(args, { home: served.home, env: { ...env(), ...extra.env }, ...(extra.cwd ? { cwd: extra.cwd } : {}) });
  const models = () => path.join(served.home, "models");

  it("a file copied into the store, and a URL pull's name after a manifest rebuild, run and show under the name ls gives", async () => {
    fs.mkdirSync(models(), { recursive: true });
    fs.copyFileSync(sharedModel(Q8), path.join(models(), "mymodel.gguf"));
    expect((await cli(["pull", `${served.hf.url}/cdn/lmrun-test/stories/${Q4}`])).code).toBe(0);
    fs.rmSync(path.join(models(), "manifest.json"));

    const names = JSON.parse((await cli(["ls", "--json"])).stdout).models.map((m: { name: string }) => m.name).sort();
    expect(names).toEqual(["mymodel.gguf", Q4]);
    // The directory the command runs in has neither file: before, both were looked for there.
    const elsewhere = tempHome("lmrun-cwd-");
    const run = await cli(["run", "mymodel.gguf", "Once", "--temp", "0", "-n", "2", "--json"], { cwd: elsewhere });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).model.path).toBe(path.join(models(), "mymodel.gguf"));
    const show = await cli(["show", Q4, "--json"], { cwd: elsewhere });
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ quant: "Q4_0", source: { kind: "file", path: path.join(models(), "url", new URL(served.hf.url).host.replace(/:/g, "_"), Q4) } });
  });

  it("a truncated file is refused by show, named by verify and ls, and not approved by pull", async () => {
    fs.mkdirSync(models(), { recursive: true });
    const cut = path.join(models(), "cut.gguf");
    fs.writeFileSync(cut, fs.readFileSync(sharedModel(Q8)).subarray(0, 200_000));

    const show = await cli(["show", "cut.gguf"]);
    expect(show.code).toBe(1);
    expect(show.stdout).toBe("");
    expect(oneLine(show.stderr)).toMatch(/cut\.gguf is truncated/);

    const verify = await cli(["verify"]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/^DAMAGED {2}cut\.gguf: cut\.gguf is truncated/);
    expect(verify.stdout).not.toMatch(/recorded|^ok/m);

    const ls = await cli(["ls"]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/cut\.gguf \(damaged\)/);
    expect(ls.stderr).toMatch(/warning: cut\.gguf is damaged: cut\.gguf is truncated/);

    const pull = await cli(["pull", "./cut.gguf"], { cwd: models() });
    expect(pull.code).toBe(1);
    expect(pull.stdout).toBe("");
    expect(oneLine(pull.stderr)).toMatch(/truncated/);
  });

  it("show's errors for a missing file and a directory are one line", async () => {
    const missing = await cli(["show", "./nowhere.gguf"]);
    expect(missing.code).toBe(1);
    expect(oneLine(missing.stderr)).toMatch(/^error: model file not found: .*nowhere\.gguf/);
    fs.mkdirSync(path.join(served.home, "dir.gguf"));
    const directory = await cli(["show", path.join(served.home, "dir.gguf")]);
    expect(directory.code).toBe(1);
    expect(oneLine(directory.stderr)).toMatch(/dir\.gguf is a directory, not a model file/);
  });

  it("pull A B tries every model, reports each (one --json result line per model) and fails when one did", async () => {
    const result = await cli(["pull", "hf:lmrun-test/nosuch-GGUF:Q4_0", `hf:lmrun-test/stories/${Q8}`, "--json"]);
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l) as { event: string; model: string; error?: string });
    const results = lines.filter((l) => l.event === "done" || l.event === "error");
    expect(results.map((l) => [l.event, l.model])).toEqual([
      ["error", "hf:lmrun-test/nosuch-GGUF:Q4_0"],
      ["done", `hf:lmrun-test/stories/${Q8}`],
    ]);
    expect(results[0]!.error).toMatch(/has no repository lmrun-test\/nosuch-GGUF/);
    expect(fs.existsSync(path.join(models(), "hf", "lmrun-test", "stories", Q8))).toBe(true);
    expect(result.stderr).toMatch(/1 of 2 pulls failed: hf:lmrun-test\/nosuch-GGUF:Q4_0/);

    const single = await cli(["pull", "hf:lmrun-test/nosuch-GGUF:Q4_0", "--json"]);
    expect(single.code).toBe(1);
    expect(JSON.parse(single.stdout.trim())).toMatchObject({ event: "error", model: "hf:lmrun-test/nosuch-GGUF:Q4_0" });
  });

  it("offline, --no-pull, a non-JSON Hub answer, and a server that drops connections and ignores Range: one clear line each", async () => {
    const offline = await cli(["pull", `hf:lmrun-test/stories/${Q8}`], { env: { HF_ENDPOINT: "http://127.0.0.1:1" } });
    expect(offline.code).toBe(1);
    const line = oneLine(offline.stderr);
    expect(line).toMatch(/cannot reach 127\.0\.0\.1:1: connect ECONNREFUSED/);
    expect(line).not.toMatch(/resumes|attempts/);

    const noPull = await cli(["run", "hf:lmrun-test/stories-GGUF:Q4_0", "hi", "--no-pull"]);
    expect(noPull.code).toBe(1);
    expect(oneLine(noPull.stderr)).toMatch(/hf:lmrun-test\/stories-GGUF:Q4_0 is not downloaded \(--no-pull\)/);
    expect(served.hf.requests).toEqual([]);

    served.hf.faults.apiAnswer = { status: 200, body: "GATEWAY LOGIN <html>", contentType: "text/html" };
    const html = await cli(["pull", "hf:lmrun-test/stories-GGUF:Q4_0"]);
    expect(html.code).toBe(1);
    expect(oneLine(html.stderr)).toMatch(/did not answer as the Hugging Face API does .*: the answer is not JSON \(text\/html\)\. Check HF_ENDPOINT/);

    served.hf.reset();
    served.hf.faults.ignoreRange = true;
    served.hf.faults.dropAfterBytes = { bytes: 100_000, times: 100 };
    const dropped = await cli(["pull", `hf:lmrun-test/stories/${Q8}`], { env: { LMRUN_PULL_RETRIES: "3" } });
    expect(dropped.code).toBe(1);
    expect(oneLine(dropped.stderr)).toContain(
      `the server closed the connection after 100000 of ${served.hf.size("lmrun-test", "stories", Q8)} bytes, and it does not support resuming (it ignores Range)`,
    );
    expect(dropped.stderr).not.toMatch(/aborted/);
  });

  it("ls shows interrupted pulls; verify says when the store is empty; rm checks every name before deleting any", async () => {
    const emptyVerify = await cli(["verify"]);
    expect(emptyVerify.code).toBe(0);
    expect(emptyVerify.stderr).toMatch(/no models in .*: nothing to verify/);

    expect((await cli(["pull", `hf:lmrun-test/stories/${Q4}`])).code).toBe(0);
    const partial = path.join(models(), "hf", "lmrun-test", "stories", `${Q8}.partial`);
    fs.writeFileSync(partial, Buffer.alloc(1000));
    fs.writeFileSync(`${path.join(models(), "hf", "lmrun-test", "stories", Q8)}.partial.json`, JSON.stringify({ url: "x", size: 379616 }));
    const ls = await cli(["ls"]);
    expect(ls.stdout).toMatch(new RegExp(`hf:lmrun-test/stories/${Q8} \\(partial\\)\\s+Q8_0\\s+1\\.00 KB of 380 KB`));

    const rm = await cli(["rm", "nosuch", `hf:lmrun-test/stories/${Q4}`]);
    expect(rm.code).toBe(1);
    expect(oneLine(rm.stderr)).toMatch(/nosuch is not in the store .*nothing was deleted/);
    expect(fs.existsSync(path.join(models(), "hf", "lmrun-test", "stories", Q4))).toBe(true);
  });
});
