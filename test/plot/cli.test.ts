import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { parseSvg, pngSize } from "./chartFiles.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-plot-cli-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const story =
  "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. One day, the sun was hot and the dog was tired, so they sat under a big tree and ate an apple. ";

describe("--plot on the bundled model", () => {
  it("bench draws a thread sweep (SVG) and a --compare (PNG); a bad extension is refused before the run", async () => {
    const sweep = path.join(dir, "sweep.svg");
    const json = path.join(dir, "before.json");
    const first = await runCli(["bench", "tiny", "-t", "1,2", "-p", "16", "-n", "4", "-r", "2", "-o", "json", "--plot", sweep], { timeoutMs: 120_000 });
    expect(first.code).toBe(0);
    fs.writeFileSync(json, first.stdout);
    const { texts } = parseSvg(sweep);
    expect(texts).toEqual(expect.arrayContaining(["CPU threads", "speed (tokens/s)", "stories260K-Q8_0.gguf · pp16", "stories260K-Q8_0.gguf · tg4"]));

    const compare = path.join(dir, "compare.png");
    const second = await runCli(["bench", "tiny", "-t", "1", "-p", "16", "-n", "4", "-r", "2", "--compare", json, "--plot", compare], { timeoutMs: 120_000 });
    expect(second.code).toBe(0);
    expect(pngSize(compare).width).toBeGreaterThan(200);

    const bad = await runCli(["bench", "tiny", "--plot", path.join(dir, "chart.jpg")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: --plot .*chart\.jpg: the file must end in \.svg or \.png/);
    expect(bad.stdout).toBe("");
  }, 300_000);

  it("perplexity --base draws PPL over the chunks of both passes and the KLD distribution", async () => {
    const corpus = path.join(dir, "story.txt");
    fs.writeFileSync(corpus, story.repeat(12));
    const file = path.join(dir, "kld.svg");
    const result = await runCli(["perplexity", "tiny", "--base", "tiny", "-f", corpus, "-c", "128", "--chunks", "2", "--plot", file], { timeoutMs: 170_000 });
    expect(result.code).toBe(0);
    const { texts } = parseSvg(file);
    expect(texts).toEqual(expect.arrayContaining(["chunk (128 tokens each)", "perplexity (PPL)", "tiny", "1", "2"]));
    expect(texts).toEqual(expect.arrayContaining(["percentile of the scored tokens (%)", "KL divergence (nats, symlog scale)"]));
  }, 180_000);
});
