import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../helpers/shared.js";

const shimBuilt = fs.existsSync(path.join(repoRoot, "dist", "native", "threadpool.node"));
const skip = process.platform !== "linux" ? "Linux only" : !shimBuilt ? "dist/native/threadpool.node was not built: no C compiler at install" : "";

/** Runs a few lines against the built engine module in a fresh process (the shim is process-wide). */
function statusAfter(body: string, env: Record<string, string> = {}): Record<string, unknown> {
  const script = `
    const { loadThreadpoolShim, threadpoolStatus } = await import(${JSON.stringify(path.join(repoRoot, "dist", "engine", "threadpool.js"))});
    ${body}
    console.log(JSON.stringify(threadpoolStatus()));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env }, encoding: "utf8" });
  return JSON.parse(out) as Record<string, unknown>;
}

describe.skipIf(skip !== "")(`the threadpool shim's guards${skip ? ` [skipped: ${skip}]` : ""}`, () => {
  it("is not loaded for a llama.cpp release its declarations were not checked against", () => {
    const status = statusAfter(`loadThreadpoolShim({ llamaCppRelease: "v9.9.9" });`);
    expect(status).toMatchObject({ loaded: false, enabled: false, decodes: 0 });
    expect(status.problem).toMatch(/not checked against llama\.cpp v9\.9\.9/);
  });

  it("LMRUN_THREADPOOL=0 keeps it out of the process", () => {
    const status = statusAfter(`loadThreadpoolShim({ llamaCppRelease: "v0.5.0" });`, { LMRUN_THREADPOOL: "0" });
    expect(status).toMatchObject({ loaded: false, problem: "turned off by LMRUN_THREADPOOL=0" });
  });

  it("loaded before any llama.cpp is in the process, it says so and stays harmless", () => {
    const status = statusAfter(`const { VERIFIED_LLAMA_CPP_RELEASE } = await import(${JSON.stringify(path.join(repoRoot, "dist", "engine", "threadpool.js"))});
      loadThreadpoolShim({ llamaCppRelease: VERIFIED_LLAMA_CPP_RELEASE });`);
    expect(status).toMatchObject({ loaded: true, enabled: false, poolsCreated: 0, problem: "libllama is not loaded" });
  });
});
