import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli, tempHome } from "../helpers/cli.js";
import { startFakeHf, sharedModelsRepo, withoutProxies, type FakeHf } from "../helpers/hfServer.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";

const Q8 = "stories260K-Q8_0.gguf";
const Q4 = "stories260K-Q4_0.gguf";
const F32 = "stories260K-f32.gguf";
const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

describe.skipIf(!hasShared)(`the model store: ls, rm, show, verify, manifest rebuild, run pulls (${hasShared ? "shared models" : sharedSkipReason})`, () => {
  let hf: FakeHf;
  let home: string;
  const env = () => ({ ...withoutProxies, HF_ENDPOINT: hf.url });
  const pull = (ref: string) => runCli(["pull", ref], { home, env: env() });

  beforeAll(async () => {
    hf = await startFakeHf(sharedModelsRepo(path.dirname(sharedModel(Q8))));
  });
  afterAll(async () => {
    await hf.close();
  });
  beforeEach(() => {
    hf.reset();
    home = tempHome();
  });

  it("ls --json lists pulled models with name, quant, size and sha256; rm deletes files, leftovers and entries", async () => {
    expect((await pull(`hf:lmrun-test/stories/${Q8}`)).code).toBe(0);
    expect((await pull("hf:lmrun-test/stories-GGUF:Q4_0")).code).toBe(0);
    // Leftovers of an interrupted pull of a third file.
    const partial = path.join(home, "models", "hf", "lmrun-test", "stories", `${F32}.partial`);
    fs.writeFileSync(partial, "GGUF-partial");
    fs.writeFileSync(partial + ".json", JSON.stringify({ url: "x" }));

    const ls = await runCli(["ls", "--json"], { home, env: env() });
    expect(ls.code, ls.stderr).toBe(0);
    const listed = JSON.parse(ls.stdout);
    expect(listed.models.map((m: { name: string }) => m.name)).toEqual([`hf:lmrun-test/stories-GGUF:Q4_0`, `hf:lmrun-test/stories/${Q8}`]);
    expect(listed.models[1]).toMatchObject({ quant: "Q8_0", sizeBytes: fs.statSync(sharedModel(Q8)).size, sha256: sha(sharedModel(Q8)) });
    expect(listed.partial.map((p: { file: string }) => p.file)).toEqual([`hf/lmrun-test/stories/${F32}.partial`]);
    const table = await runCli(["list"], { home, env: env() });
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+QUANT\s+SIZE\s+MODIFIED$/);
    expect(table.stdout).toMatch(/hf:lmrun-test\/stories-GGUF:Q4_0\s+Q4_0\s+277 KB\s+just now/);

    const rm = await runCli(["rm", "hf:lmrun-test/stories-GGUF:Q4_0", `hf:lmrun-test/stories/${F32}`], { home, env: env() });
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toContain("deleted hf:lmrun-test/stories-GGUF:Q4_0");
    expect(fs.existsSync(partial)).toBe(false);
    expect(fs.existsSync(partial + ".json")).toBe(false);
    const after = JSON.parse((await runCli(["ls", "--json"], { home, env: env() })).stdout);
    expect(after.models.map((m: { name: string }) => m.name)).toEqual([`hf:lmrun-test/stories/${Q8}`]);
    expect(after.partial).toEqual([]);
    const again = await runCli(["rm", "hf:lmrun-test/stories-GGUF:Q4_0"], { home, env: env() });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is not in the store/);
  });

  it("verify re-hashes files and names the one with a flipped byte (exit 1)", async () => {
    expect((await pull(`hf:lmrun-test/stories/${Q8}`)).code).toBe(0);
    expect((await pull(`hf:lmrun-test/stories/${Q4}`)).code).toBe(0);
    const ok = await runCli(["verify"], { home, env: env() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim().split("\n")).toHaveLength(2);
    const file = path.join(home, "models", "hf", "lmrun-test", "stories", Q4);
    const bytes = fs.readFileSync(file);
    bytes[5000] ^= 0x01;
    fs.writeFileSync(file, bytes);
    const bad = await runCli(["verify", "--json"], { home, env: env() });
    expect(bad.code).toBe(1);
    const outcomes = JSON.parse(bad.stdout).files as Array<{ name: string; status: string; actual: string }>;
    expect(outcomes.find((o) => o.name.endsWith(Q4))).toMatchObject({ status: "corrupt", actual: sha(file) });
    expect(outcomes.find((o) => o.name.endsWith(Q8))!.status).toBe("ok");
    expect(bad.stderr).toContain(`1 of 2 model file(s) failed verification: hf:lmrun-test/stories/${Q4}`);
  });

  it("a corrupt manifest is rebuilt from the files, with a warning, not an error", async () => {
    expect((await pull(`hf:lmrun-test/stories/${Q8}`)).code).toBe(0);
    fs.writeFileSync(path.join(home, "models", "manifest.json"), "{ not json");
    const ls = await runCli(["ls", "--json"], { home, env: env() });
    expect(ls.code).toBe(0);
    expect(ls.stderr).toMatch(/warning: the model manifest .* was corrupt and has been rebuilt/);
    // The quant comes back too (ls showed "-" after a rebuild).
    expect(JSON.parse(ls.stdout).models[0]).toMatchObject({ name: `hf:lmrun-test/stories/${Q8}`, quant: "Q8_0", sizeBytes: fs.statSync(sharedModel(Q8)).size });
    const manifest = JSON.parse(fs.readFileSync(path.join(home, "models", "manifest.json"), "utf8"));
    expect(manifest.files).toHaveLength(1);
    // verify records a hash for the adopted file
    const verify = await runCli(["verify", "--json"], { home, env: env() });
    expect(JSON.parse(verify.stdout).files[0]).toMatchObject({ status: "recorded", actual: sha(sharedModel(Q8)) });
  });

  it("show --json reads a local model, and only the header of a remote one", async () => {
    const local = await runCli(["show", "tiny", "--json"], { home, env: env() });
    expect(local.code, local.stderr).toBe(0);
    const report = JSON.parse(local.stdout);
    expect(report).toMatchObject({ model: "tiny", architecture: "llama", quant: "Q8_0", contextLength: 512, layers: 5, license: "mit", capabilities: ["completion"] });
    expect(report.memory[0]).toMatchObject({ contextSize: 512, cpu: { fits: true } });
    expect(report.memory[0].cpu.ramBytes).toBeGreaterThan(100_000);
    // --template of a model without one is an error, not an empty line.
    const noTemplate = await runCli(["show", "tiny", "--template"], { home, env: env() });
    expect(noTemplate.code).toBe(1);
    expect(noTemplate.stdout).toBe("");
    expect(noTemplate.stderr.trim()).toBe("error: tiny has no chat template. lmrun runs it as plain completion");

    // node-llama-cpp reads remote headers in 4 MB windows: a 94 MB model shows that only the header travels.
    const BIG = "llama2vocab-135m-shape-random-Q4_K_M.gguf";
    hf.addFile("lmrun-test", "big", BIG, sharedModel(BIG));
    const remote = await runCli(["show", `hf:lmrun-test/big/${BIG}`, "--json"], { home, env: env() });
    expect(remote.code, remote.stderr).toBe(0);
    const remoteReport = JSON.parse(remote.stdout);
    expect(remoteReport).toMatchObject({ architecture: "llama", quant: "Q4_K_M", layers: 30, source: { kind: "remote" } });
    expect(typeof remoteReport.chatTemplate).toBe("string");
    const served = hf.bytesServedFor(BIG);
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(fs.statSync(sharedModel(BIG)).size / 5);
    expect(fs.existsSync(path.join(home, "models", "hf", "lmrun-test", "big", BIG))).toBe(false);
  });

  it("run pulls a missing model first; --no-pull refuses; unknown names get a suggestion", async () => {
    const refused = await runCli(["run", `hf:lmrun-test/stories/${Q8}`, "--no-pull", "-n", "4", "Once"], { home, env: env() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is not downloaded \(--no-pull\)\. Run `lmrun pull hf:lmrun-test\/stories\/stories260K-Q8_0.gguf` first/);
    const ran = await runCli(["run", `hf:lmrun-test/stories/${Q8}`, "-n", "4", "--temp", "0", "--json", "Once upon a time"], { home, env: env() });
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout).generatedTokens).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(home, "models", "hf", "lmrun-test", "stories", Q8))).toBe(true);
    const typo = await runCli(["run", "qwen2.6:0.5b", "hi"], { home, env: env() });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/unknown model "qwen2.6:0.5b"\. Did you mean qwen2.5:0.5b/);
  });

  it("config set/get/list validate and persist settings", async () => {
    expect((await runCli(["config", "set", "threads", "3"], { home })).code).toBe(0);
    expect((await runCli(["config", "get", "threads"], { home })).stdout).toBe("3\n");
    const bad = await runCli(["config", "set", "topP", "2"], { home });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid value for topP: must be between 0 and 1/);
    const list = JSON.parse((await runCli(["config", "list", "--json"], { home })).stdout);
    expect(list.threads).toEqual({ value: 3, default: null });
    expect(list.temperature).toEqual({ value: null, default: 0.8 });
    expect((await runCli(["config", "path"], { home })).stdout.trim()).toBe(path.join(home, "config.json"));
    // modelsDir moves the store
    const dir = path.join(home, "elsewhere");
    expect((await runCli(["config", "set", "modelsDir", dir], { home })).code).toBe(0);
    expect((await runCli(["pull", `hf:lmrun-test/stories/${Q4}`], { home, env: env() })).code).toBe(0);
    expect(fs.existsSync(path.join(dir, "hf", "lmrun-test", "stories", Q4))).toBe(true);
  });
});
