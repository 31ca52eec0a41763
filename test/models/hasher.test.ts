import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { createHasher } from "../../src/models/hasher.js";

describe("download hasher", () => {
  const chunks = [randomBytes(70_000), randomBytes(1), randomBytes(5 << 20), randomBytes(10).subarray(2, 7)];
  const whole = Buffer.concat(chunks);
  const expected = createHash("sha256").update(whole).digest("hex");
  const partial = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-hasher-")), "f.partial");

  /** Writes the chunks one by one as a download does, telling the hasher after each. */
  async function feed(expectedBytes: number, resumeAt = 0): Promise<string> {
    const file = partial();
    fs.writeFileSync(file, whole.subarray(0, resumeAt));
    const hasher = createHasher(expectedBytes, file);
    await hasher.catchUp(resumeAt);
    let end = 0;
    for (const chunk of chunks) {
      const start = end;
      end += chunk.length;
      if (end <= resumeAt) continue;
      const part = chunk.subarray(Math.max(0, resumeAt - start));
      fs.appendFileSync(file, part);
      hasher.update([Buffer.from(part)], end);
    }
    return hasher.digest();
  }

  it("hashes inline for small files", async () => {
    expect(await feed(1000)).toBe(expected);
  });
  it("hashes on a worker that reads the partial back, for big files", async () => {
    expect(await feed(1 << 30)).toBe(expected);
  });
  it("covers what a resumed download found in the partial, inline and on a worker", async () => {
    expect(await feed(1000, 70_001)).toBe(expected);
    expect(await feed(1 << 30, 70_001)).toBe(expected);
  });
});
