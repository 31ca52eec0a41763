import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { cliPath, tempHome } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

/**
 * npx / npm exec do not pass SIGTERM on to the command they run: stopping `npx lmrun serve` (a
 * process manager, a container stop) killed npm and left lmrun serving. lmrun started by a package
 * runner (npm_execpath set) ends as on SIGTERM when that parent dies. The "runner" here is a node
 * process with npm's variable that dies without touching its child, as npm does.
 */
const runner = `
const { spawn } = require("node:child_process");
const child = spawn(process.execPath, [process.argv[1], "serve", "tiny", "--port", process.argv[2]], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, npm_execpath: "/usr/lib/node_modules/npm/bin/npm-cli.js" } });
let err = "";
child.stderr.on("data", (d) => { err += d; if (/listening on/.test(err)) { process.stdout.write(String(child.pid) + "\\n"); process.exit(0); } });
child.on("exit", (code) => { process.stdout.write("child exited early " + code + " " + err + "\\n"); process.exit(1); });
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(process.platform === "win32")("started by a package runner", () => {
  it("ends, as on SIGTERM, when npx / npm exec is gone", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const parent = spawn(process.execPath, ["-e", runner, cliPath, String(port)], {
      cwd: repoRoot,
      env: { ...process.env, LMRUN_HOME: tempHome(), NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    parent.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve) => parent.on("close", resolve));
    expect(code, out).toBe(0);
    const pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    const goneBy = Date.now() + 10_000;
    while (alive(pid) && Date.now() < goneBy) await new Promise((r) => setTimeout(r, 100));
    const stillThere = alive(pid);
    if (stillThere) process.kill(pid, "SIGKILL");
    expect(stillThere, "lmrun serve outlived the package runner that started it").toBe(false);
    // The port is free again: the server shut down rather than lingering.
    const reachable = await fetch(`http://127.0.0.1:${port}/health`).then(() => true, () => false);
    expect(reachable).toBe(false);
  });
});
