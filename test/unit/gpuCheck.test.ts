import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { failureReason, gpuCheckKey, readGpuCheck, runGpuProbe, saveGpuCheck } from "../../src/engine/gpuCheck.js";
import { checkGpuChoiceForPlatform, chooseBackend, type BackendHandle } from "../../src/engine/llama.js";
import { CancelledError, LmrunError, UsageError } from "../../src/errors.js";
import { runCli } from "../helpers/cli.js";
import { bundledTinyModel, repoRoot } from "../helpers/shared.js";

// What the prebuilt CUDA binding printed on an H100 whose driver (580, CUDA 13.0) is older than the
// toolkit that compiled its PTX (seen on the lent GPU machine, 2026-11-25), trimmed.
const cudaAbortStderr = [
  "/home/runner/work/node-llama-cpp/node-llama-cpp/llama/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu:108: CUDA error",
  "llama.cpp error: CUDA error: the provided PTX was compiled with an unsupported toolchain.",
  "llama.cpp error:   current device: 0, in function ggml_cuda_kernel_can_use_pdl at common.cuh:1679",
  "llama.cpp error:   cudaFuncGetAttributes(&attr, kernel)",
  "/work/main/node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda/libggml-base.so(ggml_abort+0x152)[0x7f75d806ff42]",
].join("\n");

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-gpucheck-"));
}

describe("the GPU check's failure reason", () => {
  it("is llama.cpp's error line, not the backtrace", () => {
    expect(failureReason(cudaAbortStderr, { code: null, signal: "SIGABRT", timedOut: false }, 1000)).toBe(
      "CUDA error: the provided PTX was compiled with an unsupported toolchain",
    );
  });
  it("names the signal, the exit code or the timeout when llama.cpp said nothing", () => {
    expect(failureReason("", { code: null, signal: "SIGSEGV", timedOut: false }, 1000)).toBe("the test run crashed (SIGSEGV)");
    expect(failureReason("noise\n", { code: 3, signal: null, timedOut: false }, 1000)).toBe("the test run exited with code 3");
    expect(failureReason("", { code: null, signal: "SIGKILL", timedOut: true }, 300_000)).toBe("the test run did not finish in 300 s");
  });
  it("takes the probe's own error when loading failed before any kernel ran", () => {
    expect(failureReason("probe error: NoBinaryFoundError\n", { code: 1, signal: null, timedOut: false }, 1000)).toBe("NoBinaryFoundError");
  });
});

describe("the GPU check cache", () => {
  it("keys on backend, binding version, devices and driver", () => {
    const base = { backend: "cuda", bindingVersion: "3.22.1", devices: ["NVIDIA H100 80GB HBM3"], driver: "NVRM version: 580.159.04" };
    expect(gpuCheckKey(base)).toBe(gpuCheckKey({ ...base }));
    expect(gpuCheckKey(base)).not.toBe(gpuCheckKey({ ...base, driver: "NVRM version: 590.1" }));
    expect(gpuCheckKey(base)).not.toBe(gpuCheckKey({ ...base, backend: "vulkan" }));
    expect(gpuCheckKey(base)).not.toBe(gpuCheckKey({ ...base, bindingVersion: "3.23.0" }));
  });
  it("round-trips outcomes and survives a corrupt file", async () => {
    const file = path.join(tempDir(), "gpu-check.json");
    expect(await readGpuCheck(file, "k")).toBeUndefined();
    const outcome = { ok: false, backend: "cuda", reason: "CUDA error: x", checkedAt: "2026-11-25T00:00:00.000Z", durationMs: 12 };
    await saveGpuCheck(file, "k", outcome);
    await saveGpuCheck(file, "other", { ...outcome, ok: true, backend: "vulkan" });
    expect(await readGpuCheck(file, "k")).toEqual(outcome);
    expect((await readGpuCheck(file, "other"))?.backend).toBe("vulkan");
    fs.writeFileSync(file, "{ not json");
    expect(await readGpuCheck(file, "k")).toBeUndefined();
    await saveGpuCheck(file, "k", outcome);
    expect(await readGpuCheck(file, "k")).toEqual(outcome);
  });
});

describe("the GPU check's test run", () => {
  it("reports a child that aborts inside llama.cpp as failed, with the cause", async () => {
    const dir = tempDir();
    const script = path.join(dir, "abort.mjs");
    fs.writeFileSync(script, `process.stderr.write(${JSON.stringify(cudaAbortStderr + "\n")}, () => process.abort());\n`);
    const outcome = await runGpuProbe({ backend: "cuda", modelPath: bundledTinyModel, childScript: script, timeoutMs: 20_000 });
    expect(outcome.ok).toBe(false);
    expect(outcome.reason).toBe("CUDA error: the provided PTX was compiled with an unsupported toolchain");
  });
  it("a test interrupted by Ctrl-C is a cancellation, not a failed backend", async () => {
    const dir = tempDir();
    const script = path.join(dir, "sigint.mjs");
    fs.writeFileSync(script, "process.kill(process.pid, 'SIGINT'); setInterval(() => {}, 1000);\n");
    const error = await runGpuProbe({ backend: "cuda", modelPath: bundledTinyModel, childScript: script, timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
  });
  it("kills a child that hangs and says so", async () => {
    const dir = tempDir();
    const script = path.join(dir, "hang.mjs");
    fs.writeFileSync(script, "setInterval(() => {}, 1000);\n");
    const outcome = await runGpuProbe({ backend: "vulkan", modelPath: bundledTinyModel, childScript: script, timeoutMs: 300 });
    expect(outcome).toMatchObject({ ok: false, reason: "the test run did not finish in 0.3 s" });
  });
  it("passes with the real probe on the CPU backend (real inference on the bundled model)", async () => {
    const childScript = path.join(repoRoot, "dist", "engine", "gpuProbeChild.js");
    const outcome = await runGpuProbe({ backend: "cpu", modelPath: bundledTinyModel, childScript, timeoutMs: 60_000 });
    expect(outcome).toMatchObject({ ok: true, backend: "cpu" });
    const bad = await runGpuProbe({ backend: "cpu", modelPath: path.join(repoRoot, "README.md"), childScript, timeoutMs: 60_000 });
    expect(bad.ok).toBe(false);
    expect(bad.reason).toBeTruthy();
  });
});

describe("--gpu choices the platform cannot have", () => {
  it("refuses Metal off macOS and CUDA on macOS as usage errors", () => {
    expect(() => checkGpuChoiceForPlatform("metal", "linux", "x64")).toThrow(UsageError);
    expect(() => checkGpuChoiceForPlatform("cuda", "darwin", "arm64")).toThrow(/not available on macOS/);
    expect(() => checkGpuChoiceForPlatform("metal", "darwin", "arm64")).not.toThrow();
    expect(() => checkGpuChoiceForPlatform("cuda", "linux", "x64")).not.toThrow();
    expect(() => checkGpuChoiceForPlatform("auto", "win32", "x64")).not.toThrow();
  });
  it("lmrun run --gpu metal on Linux is one line and exit 2 (node-llama-cpp would silently pick another backend)", async () => {
    if (process.platform === "darwin") return;
    const result = await runCli(["run", "tiny", "hi", "--gpu", "metal"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr.trim().split("\n")).toEqual([`error: --gpu metal: Metal exists only on macOS, and this is ${process.platform}. Use --gpu auto, cuda, vulkan or cpu`]);
  });
});

describe("choosing a backend from the test runs", () => {
  type Gpu = BackendHandle["gpu"];
  /** A stand-in binding per backend, with node-llama-cpp's auto order CUDA, Vulkan, CPU. */
  function machine(results: Partial<Record<string, { ok: boolean; fresh?: boolean }>>, available: Gpu[] = ["cuda", "vulkan", false]) {
    const created: string[] = [];
    const disposed: string[] = [];
    const notices: { level: string; message: string }[] = [];
    const deps = {
      async create(choice: string, exclude: string[]) {
        const gpu = choice === "auto" ? available.find((g) => g === false || !exclude.includes(g))! : choice === "cpu" ? false : (choice as Gpu);
        created.push(String(gpu));
        return { gpu, dispose: async () => void disposed.push(String(gpu)) };
      },
      async check(llama: BackendHandle) {
        const result = results[String(llama.gpu)];
        if (llama.gpu === false || !result) return undefined;
        return { ok: result.ok, backend: String(llama.gpu), checkedAt: "", durationMs: 1, fresh: result.fresh ?? true, ...(result.ok ? {} : { reason: `${llama.gpu} broke` }) };
      },
      notice: (n: { level: string; message: string }) => void notices.push(n),
    };
    return { deps, created, disposed, notices };
  }

  it("auto skips a failing CUDA for a working Vulkan, with one warning", async () => {
    const m = machine({ cuda: { ok: false }, vulkan: { ok: true } });
    const chosen = await chooseBackend("auto", m.deps);
    expect(chosen.gpu).toBe("vulkan");
    expect(m.created).toEqual(["cuda", "vulkan"]);
    expect(m.disposed).toEqual(["cuda"]);
    expect(m.notices).toHaveLength(1);
    expect(m.notices[0]).toMatchObject({ level: "warn" });
    expect(m.notices[0]!.message).toMatch(/^the CUDA backend failed a test run \(cuda broke\); trying the next backend\. Update the NVIDIA driver, or build llama\.cpp/);
  });

  it("auto falls back to the CPU when every GPU backend fails; a remembered failure is only a note", async () => {
    const m = machine({ cuda: { ok: false, fresh: false }, vulkan: { ok: false, fresh: false } });
    expect((await chooseBackend("auto", m.deps)).gpu).toBe(false);
    expect(m.created).toEqual(["cuda", "vulkan", "false"]);
    expect(m.notices.map((n) => n.level)).toEqual(["info", "info"]);
  });

  it("auto takes the first backend whose test passes, without a word", async () => {
    const m = machine({ cuda: { ok: true } });
    expect((await chooseBackend("auto", m.deps)).gpu).toBe("cuda");
    expect(m.notices).toEqual([]);
    expect(m.disposed).toEqual([]);
  });

  it("an explicit backend that fails its test is an error naming the reason and the fix, not a fallback", async () => {
    const m = machine({ cuda: { ok: false } });
    const error = await chooseBackend("cuda", m.deps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LmrunError);
    expect((error as LmrunError).message).toBe("the CUDA backend fails on this machine: cuda broke");
    expect((error as LmrunError).hint).toMatch(/lmrun engine build --gpu cuda.*or use --gpu cpu$/);
    expect(m.created).toEqual(["cuda"]);
    expect(m.disposed).toEqual(["cuda"]);
  });

  it("--gpu cpu never runs a test", async () => {
    const m = machine({});
    expect((await chooseBackend("cpu", m.deps)).gpu).toBe(false);
    expect(m.notices).toEqual([]);
  });
});
