import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tempHome } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

describe("an install whose path has a space in it", () => {
  it("finds its bundled model and catalogue (file URLs are decoded, not used as paths)", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun space test "));
    for (const entry of ["bin", "dist", "assets", "models.json", "models.schema.json", "package.json"]) {
      fs.cpSync(path.join(repoRoot, entry), path.join(root, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"), "dir");
    const result = spawnSync(process.execPath, [path.join(root, "bin", "lmrun.js"), "run", "tiny", "--raw", "Once upon a time", "-n", "8", "--temp", "0"], {
      encoding: "utf8",
      env: { ...process.env, LMRUN_HOME: tempHome(), CI: "true", NO_COLOR: "1" },
      timeout: 60_000,
    });
    fs.rmSync(root, { recursive: true, force: true });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout.length).toBeGreaterThan(0);
  });
});
