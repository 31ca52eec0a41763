import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { formatError, UsageError } from "../../src/errors.js";
import { decodeUtf8, readInputBytes, readInputText } from "../../src/io/inputFile.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-input-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The one line main prints for a failed read, and whether it is a usage error (exit 2). */
async function failure(read: Promise<unknown>): Promise<{ line: string; usage: boolean }> {
  const error = await read.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return { line: formatError(error), usage: error instanceof UsageError };
}

describe("input files (one reader for -f, --system-file, batch files ...)", () => {
  it("reads a file whole, as bytes or text", async () => {
    const file = path.join(dir, "t.txt");
    fs.writeFileSync(file, "héllo\n");
    expect(await readInputText(file, { what: "text file" })).toBe("héllo\n");
    expect([...(await readInputBytes(file, { what: "text file" }))]).toEqual([...Buffer.from("héllo\n")]);
  });

  it("a missing file, a directory and an empty file are one line each, naming the file and the flag", async () => {
    const missing = path.join(dir, "nope.txt");
    expect(await failure(readInputBytes(missing, { what: "task file", flag: "-f" }))).toEqual({ line: `task file not found: ${missing}. Check the path given to -f`, usage: true });
    expect(await failure(readInputBytes(dir, { what: "task file", flag: "-f" }))).toEqual({ line: `${dir} is a directory. Give a task file to -f`, usage: true });
    const empty = path.join(dir, "empty.txt");
    fs.writeFileSync(empty, "");
    expect(await failure(readInputBytes(empty, { what: "task file", emptyHint: "Give tasks" }))).toEqual({ line: `${empty} is empty. Give tasks`, usage: true });
    // Without emptyHint, an empty file is the caller's to judge.
    expect((await readInputBytes(empty, { what: "task file" })).length).toBe(0);
  });

  it("another failure names the file and what it was for (not a usage error)", async () => {
    if (process.getuid?.() === 0) return; // root reads anything
    const locked = path.join(dir, "locked.txt");
    fs.writeFileSync(locked, "x");
    fs.chmodSync(locked, 0o000);
    const { line, usage } = await failure(readInputText(locked, { what: "system prompt file" }));
    expect(line).toMatch(new RegExp(`^cannot read system prompt file ${locked.replace(/[.]/g, "\\.")}: EACCES`));
    expect(usage).toBe(false);
  });

  it("- is piped stdin where the command allows it; a terminal there is a usage error", async () => {
    expect(await readInputText("-", { what: "batch file", stdin: Readable.from([Buffer.from('{"prompt": "a"}\n')]) })).toBe('{"prompt": "a"}\n');
    const terminal = Object.assign(Readable.from([]), { isTTY: true });
    expect(await failure(readInputText("-", { what: "batch file", stdin: terminal }))).toEqual({
      line: "- reads the batch file from stdin, which is a terminal. Pipe the file in, or give its path",
      usage: true,
    });
    // Without stdin, - is a file name like any other.
    expect((await failure(readInputText("-", { what: "batch file" }))).line).toMatch(/^batch file not found: -/);
  });

  it("strict UTF-8 names the first bad byte", () => {
    expect(decodeUtf8(Buffer.from("ok é"), "f.txt", "hint")).toBe("ok é");
    expect(() => decodeUtf8(Buffer.from([0x61, 0x62, 0xff, 0x63]), "f.txt", "Convert it")).toThrow(/^f\.txt is not valid UTF-8 \(first bad byte at offset 2\)$/);
    // A sequence cut short by the bad byte: its start is named.
    expect(() => decodeUtf8(Buffer.from([0x61, 0xc3, 0x28]), "f.txt", "")).toThrow(/offset 1/);
  });
});
