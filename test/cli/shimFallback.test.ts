import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { repoRoot } from "../helpers/shared.js";

/**
 * A registry install carries the threadpool shim built on the packer's machine. Where it cannot load
 * (another CPU architecture, an older glibc, a damaged file) lmrun must run as without it, silently,
 * and `lmrun info` must say why. Checked on a copy of the package whose shim is not a loadable library.
 */
const linux = process.platform === "linux";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-shim-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function copyPackage(): string {
  const root = path.join(dir, "package");
  for (const part of ["bin", "dist", "assets", "models.json", "package.json"]) fs.cpSync(path.join(repoRoot, part), path.join(root, part), { recursive: true });
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"));
  fs.mkdirSync(path.join(root, "dist", "native"), { recursive: true });
  // An ELF header for another machine (aarch64 on x64, x86-64 elsewhere): dlopen refuses it.
  const elf = Buffer.alloc(64);
  elf.write("\x7fELF", 0, "latin1");
  elf[4] = 2; // 64-bit
  elf[5] = 1; // little endian
  elf[6] = 1;
  elf.writeUInt16LE(3, 16); // ET_DYN
  elf.writeUInt16LE(process.arch === "x64" ? 183 : 62, 18); // EM_AARCH64 or EM_X86_64
  fs.writeFileSync(path.join(root, "dist", "native", "threadpool.node"), elf);
  return root;
}

describe.skipIf(!linux)(`a threadpool shim that cannot load${linux ? "" : " [skipped: Linux only]"}`, () => {
  it("is left out quietly: run gives the same text with nothing on stderr, and info says why", async () => {
    const root = copyPackage();
    const cli = path.join(root, "bin", "lmrun.js");
    const args = ["run", "tiny", "Once upon a time", "--temp", "0", "-n", "12", "-t", "2"];
    const [copy, original] = await Promise.all([runCli(args, { cli, timeoutMs: 200_000 }), runCli(args, { timeoutMs: 200_000 })]);
    expect(copy.code).toBe(0);
    expect(copy.stderr).toBe("");
    expect(copy.stdout).toBe(original.stdout);
    const info = await runCli(["info", "--json"], { cli, timeoutMs: 200_000 });
    expect(info.code).toBe(0);
    const report = JSON.parse(info.stdout) as { cpuThreads: { detail?: string } & Record<string, unknown> };
    expect(JSON.stringify(report.cpuThreads)).toMatch(/could not be loaded/);
  }, 240_000);
});
