import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { badLinesError, parseBatch } from "../../src/client/batchFile.js";
import { fileSink } from "../../src/client/batchOutput.js";
import { formatError } from "../../src/errors.js";

describe("batch input lines", () => {
  it("reads prompts, messages, ids (default: the line number) and sampling fields", () => {
    const { items, bad } = parseBatch(
      [
        '{"id": "a", "prompt": "Once", "temperature": 0, "max_tokens": 8, "stop": "\\n", "seed": 3}',
        "",
        '{"prompt": "Twice", "top_k": 5, "top_p": 0.5, "min_p": 0.1, "repeat_penalty": 1.1, "system": "Be brief"}',
        '{"id": 9, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}], "num_predict": 4}',
        '{"id": 10, "prompt": "p", "logprobs": true, "top_logprobs": 5}',
        '{"id": 11, "prompt": "p", "logprobs": true}',
        '{"id": 12, "prompt": "p", "logprobs": false, "top_logprobs": 0}',
      ].join("\n"),
    );
    expect(bad).toEqual([]);
    expect(items).toEqual([
      { id: "a", line: 1, prompt: "Once", sampling: { temperature: 0, maxTokens: 8, stop: ["\n"], seed: 3 } },
      { id: 3, line: 3, prompt: "Twice", system: "Be brief", sampling: { topK: 5, topP: 0.5, minP: 0.1, repeatPenalty: 1.1 } },
      { id: 9, line: 4, messages: [{ role: "system", content: "s" }, { role: "user", content: "hi" }], sampling: { maxTokens: 4 } },
      { id: 10, line: 5, prompt: "p", sampling: {}, logprobs: { top: 5 } },
      { id: 11, line: 6, prompt: "p", sampling: {}, logprobs: { top: 0 } },
      { id: 12, line: 7, prompt: "p", sampling: {} },
    ]);
  });

  it("names every bad line by number, with the reason, in one error line", () => {
    const { items, bad } = parseBatch(
      [
        '{"id": 1, "prompt": "ok"}',
        "not json",
        '{"id": 1, "prompt": "again"}',
        '{"id": 2}',
        '{"id": 3, "prompt": "x", "temperature": -1}',
        '{"id": 4, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        '["an array"]',
        '{"id": 5, "prompt": "p", "messages": []}',
        '{"id": 6, "prompt": "p", "top_logprobs": 2}',
        '{"id": 7, "prompt": "p", "logprobs": true, "top_logprobs": 21}',
      ].join("\n"),
    );
    expect(items.map((i) => i.id)).toEqual([1]);
    expect(bad).toEqual([
      { line: 2, reason: "not JSON" },
      { line: 3, reason: 'id 1 was already used on line 1' },
      { line: 4, reason: 'no "prompt" or "messages"' },
      { line: 5, reason: '"temperature" must be a number from 0 to 100' },
      { line: 6, reason: "the last message must be the user's turn to answer" },
      { line: 7, reason: "not a JSON object" },
      { line: 8, reason: 'give "prompt" or "messages", not both' },
      { line: 9, reason: '"top_logprobs" needs "logprobs": true' },
      { line: 10, reason: '"top_logprobs" must be a whole number from 0 to 20' },
    ]);
    const error = badLinesError("in.jsonl", bad);
    expect(error.exitCode).toBe(2);
    expect(formatError(error)).toBe("in.jsonl line 2: not JSON (and 8 more bad lines: 3, 4, 5, 6, 7, 8, 9, 10). Nothing was run; fix the file and run again");
  });
});

describe("batch answer file", () => {
  const tmp = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-batch-out-")), "answers.jsonl");

  it("appends one flushed line per answer; a file that already holds answers needs --resume", async () => {
    const file = tmp();
    const sink = await fileSink(file, false);
    expect(sink.answered.size).toBe(0);
    await sink.write({ id: "a", text: "one" } as never);
    await sink.write({ id: 2, text: "two" } as never);
    // Readable line by line while the batch still runs: nothing is held back in a buffer.
    expect(fs.readFileSync(file, "utf8")).toBe('{"id":"a","text":"one"}\n{"id":2,"text":"two"}\n');
    await sink.close();
    await expect(fileSink(file, false)).rejects.toThrow(/already holds answers/);
  });

  it("--resume skips answered ids and drops failed answers and a line cut short by a kill", async () => {
    const file = tmp();
    fs.writeFileSync(file, '{"id":"a","text":"one"}\n{"id":"b","line":2,"error":"boom"}\n{"id":3,"text":"three"}\n{"id":"c","te');
    const sink = await fileSink(file, true);
    expect([...sink.answered].sort()).toEqual(["3", "a"]);
    expect(fs.readFileSync(file, "utf8")).toBe('{"id":"a","text":"one"}\n{"id":3,"text":"three"}\n');
    await sink.write({ id: "b", text: "two" } as never);
    await sink.close();
    expect(fs.readFileSync(file, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l).id)).toEqual(["a", 3, "b"]);
  });
});
