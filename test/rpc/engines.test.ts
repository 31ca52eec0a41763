import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { nodeLlamaCppVersion } from "../../src/engine/binding.js";
import { engineCmakeOptions, engineId, findRpcEngine, linkEngine, listEngines, localBuildPath } from "../../src/engine/engines.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function store(records: { gpu: string; rpc: boolean; nodeLlamaCppVersion?: string }[]): NodeJS.ProcessEnv {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-engines-"));
  dirs.push(dir);
  for (const record of records) {
    const version = record.nodeLlamaCppVersion ?? nodeLlamaCppVersion();
    const id = engineId({ gpu: record.gpu as "cpu", rpc: record.rpc, nodeLlamaCppVersion: version });
    fs.mkdirSync(path.join(dir, id), { recursive: true });
    fs.writeFileSync(
      path.join(dir, id, "engine.json"),
      JSON.stringify({ id, gpu: record.gpu, rpc: record.rpc, cmakeOptions: engineCmakeOptions(record), folderName: `f-${id}`, nodeLlamaCppVersion: version, llamaCppRelease: "v0.5.0", llamaCppCommit: "de3ff81", builtAt: "", buildSeconds: 1, sizeBytes: 1 }),
    );
  }
  fs.mkdirSync(path.join(dir, "not-an-engine"));
  return { LMRUN_ENGINES: dir };
}

describe("engine store", () => {
  it("names a build after what its binary depends on", () => {
    expect(engineId({ gpu: "cuda", rpc: true, nodeLlamaCppVersion: "3.22.1", llamaCppRelease: "v0.5.0" })).toBe("cuda-rpc-llama.cpp-v0.5.0-nlc-3.22.1");
    expect(engineId({ gpu: "cpu", rpc: false, nodeLlamaCppVersion: "3.22.1", llamaCppRelease: "v0.5.0" })).toBe("cpu-llama.cpp-v0.5.0-nlc-3.22.1");
    // RPC builds carry their options (getLlama finds them by these); plain ones none, so node-llama-cpp prefers them itself.
    expect(engineCmakeOptions({ rpc: true })).toEqual({ GGML_OPENMP: "OFF", GGML_RPC: "ON" });
    expect(engineCmakeOptions({ rpc: false })).toEqual({});
  });

  it("--rpc takes the RPC build of the chosen backend; auto prefers CUDA, then Vulkan, then the CPU", async () => {
    const env = store([{ gpu: "cpu", rpc: true }, { gpu: "vulkan", rpc: true }, { gpu: "cuda", rpc: false }]);
    expect((await listEngines(env)).map((e) => e.id)).toHaveLength(3);
    expect((await findRpcEngine("auto", env)).gpu).toBe("vulkan");
    expect((await findRpcEngine("cpu", env)).gpu).toBe("cpu");
    await expect(findRpcEngine("cuda", env)).rejects.toThrow("--rpc needs an engine build with llama.cpp's RPC backend for cuda, and there is none");
  });

  it("never picks a build made for another node-llama-cpp", async () => {
    const env = store([{ gpu: "cpu", rpc: true, nodeLlamaCppVersion: "3.0.0" }]);
    const engines = await listEngines(env);
    expect(engines[0]!.current).toBe(false);
    await expect(findRpcEngine("auto", env)).rejects.toThrow(/was made for node-llama-cpp 3\.0\.0/);
  });

  it("links a build for node-llama-cpp from processes starting at once (a fresh install's first RPC workers)", async () => {
    const env = store([{ gpu: "cpu", rpc: true }]);
    const [engine] = await listEngines(env);
    const listing = { ...engine!, folderName: `lmrun-test-link-${process.pid}` };
    const link = localBuildPath(listing.folderName);
    try {
      // The old way (remove, then make the link) failed here with EEXIST when two workers started together.
      await Promise.all(Array.from({ length: 8 }, () => linkEngine(listing)));
      expect(fs.readlinkSync(link)).toBe(path.join(listing.dir, "build"));
      expect(fs.readdirSync(path.dirname(link)).filter((name) => name.startsWith(`${listing.folderName}.`))).toEqual([]);
    } finally {
      fs.rmSync(link, { force: true });
    }
  });
});
