import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, tempHome } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

/**
 * The build bundles node-llama-cpp into dist/vendor/node-llama-cpp.js (scripts/bundle-node-llama-cpp.mjs)
 * and engine code loads it through src/engine/nodeLlamaCpp.ts: one file instead of ~400 modules. These
 * check that the bundle is what runs, that it gives the package's exact output, and that no engine
 * module loads the package beside it (a second copy: twice the start-up, and two lock maps).
 */
const bundle = path.join(repoRoot, "dist", "vendor", "node-llama-cpp.js");
const { usableBundle } = await import("../../dist/engine/nodeLlamaCpp.js");

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith(".ts") || entry.name.endsWith(".tsx") ? [full] : [];
  });
}

describe("node-llama-cpp's one-file bundle", () => {
  it("is built for the installed version and chosen unless turned off or stale", () => {
    expect(fs.existsSync(bundle), "npm run build makes dist/vendor/node-llama-cpp.js").toBe(true);
    const installed = JSON.parse(fs.readFileSync(path.join(repoRoot, "node_modules", "node-llama-cpp", "package.json"), "utf8")).version;
    expect(JSON.parse(fs.readFileSync(path.join(repoRoot, "dist", "vendor", "node-llama-cpp.json"), "utf8"))).toEqual({ nodeLlamaCppVersion: installed });
    expect(usableBundle({})).toBe(true);
    expect(usableBundle({ LMRUN_NODE_LLAMA_CPP_BUNDLE: "0" })).toBe(false);
    expect(usableBundle({}, "0.0.1")).toBe(false);
  });

  it("is the only way source code loads node-llama-cpp at run time (type imports aside)", () => {
    const loader = path.join(repoRoot, "src", "engine", "nodeLlamaCpp.ts");
    const offenders = sourceFiles(path.join(repoRoot, "src"))
      .filter((file) => file !== loader)
      .filter((file) => {
        const text = fs.readFileSync(file, "utf8");
        return /import\(\s*["']node-llama-cpp["']\s*\)(?!\.)/.test(text.replace(/typeof import\(\s*["']node-llama-cpp["']\s*\)/g, "")) ||
          /^import\s+(?!type\b)[^;]*from\s+["']node-llama-cpp["']/m.test(text);
      })
      .map((file) => path.relative(repoRoot, file));
    expect(offenders).toEqual([]);
  });

  it("generates the package's exact text, and `info` says which copy ran", async () => {
    const home = tempHome();
    const args = ["run", "tiny", "Once upon a time", "--temp", "0", "-n", "24", "--local"];
    const viaBundle = await runCli(args, { home });
    const viaPackage = await runCli(args, { home, env: { LMRUN_NODE_LLAMA_CPP_BUNDLE: "0" } });
    expect(viaBundle.code).toBe(0);
    expect(viaPackage.code).toBe(0);
    expect(viaBundle.stdout.length).toBeGreaterThan(20);
    expect(viaBundle.stdout).toBe(viaPackage.stdout);

    const info = JSON.parse((await runCli(["info", "--json"], { home })).stdout);
    expect(info.versions.nodeLlamaCppLoadedFrom).toBe("bundle");
    const infoPackage = JSON.parse((await runCli(["info", "--json"], { home, env: { LMRUN_NODE_LLAMA_CPP_BUNDLE: "0" } })).stdout);
    expect(infoPackage.versions.nodeLlamaCppLoadedFrom).toBe("package");
  });
});
