import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { main } from "../../src/main.js";
import { cliPath, tempHome } from "../helpers/cli.js";

/** A shell script run as a user would, with the CLI as `lmrun`. */
function shell(script: string, home: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("bash", ["-c", `lmrun() { node ${JSON.stringify(cliPath)} "$@"; }\n${script}`], {
    cwd: home,
    env: { ...process.env, LMRUN_HOME: home, NO_COLOR: "1", CI: "true" },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("run in scripts: stdin", () => {
  it("--no-stdin leaves a `while read` loop's input alone, and a prompt argument never waits on a device such as /dev/zero", async () => {
    const home = tempHome();
    fs.writeFileSync(path.join(home, "prompts.txt"), "Once upon a time\nThe little dog\n");
    const loop = shell('while read -r line; do lmrun run tiny "$line" -n 1 --temp 0 --no-stdin --json; echo "---"; done < prompts.txt', home);
    expect(loop.status, loop.stderr).toBe(0);
    const replies = loop.stdout.split("---\n").filter((part) => part.trim() !== "").map((part) => JSON.parse(part) as { promptTokens: number });
    // Every line got its own run: before, the first run took the rest of the file as its material.
    expect(replies).toHaveLength(2);

    // /dev/zero never ends: reading it would run out of memory instead of answering.
    const device = shell("lmrun run tiny Once -n 1 --temp 0 --json < /dev/zero", home);
    expect(device.status, device.stderr).toBe(0);
    expect(JSON.parse(device.stdout).promptTokens).toBeLessThan(10);
  });

  it("with no prompt on a terminal, run points to `lmrun chat`", async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let errors = "";
    stderr.on("data", (d: Buffer) => (errors += d.toString()));
    const code = await main(["run", "tiny"], {
      stdin,
      stdout,
      stderr,
      env: { ...process.env, LMRUN_HOME: tempHome(), NO_COLOR: "1" },
      signal: new AbortController().signal,
      stdoutClosed: () => false,
    });
    expect(code).toBe(2);
    expect(errors).toBe('error: no prompt: give one as arguments or pipe it on stdin. For a conversation, use `lmrun chat MODEL`; for one reply: lmrun run tiny "Once upon a time"\n');
  });
});
