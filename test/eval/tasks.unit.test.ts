import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseHellaswag, parseMultipleChoice, parseWinogrande, serializeMultipleChoice } from "../../src/eval/tasks/datasets.js";
import { cFixed, finalLines, floatAccuracy, pairedDifference, scoreOf, tableRow, wilson } from "../../src/eval/tasks/report.js";
import { hellaswagOrder, Mt19937, pickWithoutReplacement, uniformBelow } from "../../src/eval/tasks/rng.js";
import { repoRoot } from "../helpers/shared.js";

const fixtures = path.join(repoRoot, "test", "fixtures", "eval");

/**
 * Expected draws printed by a C++ program compiled with g++ 12.2 (libstdc++, the compiler that built
 * the llama.cpp tools here): std::mt19937 rng(1); std::uniform_int_distribution<size_t>(0, n - 1)(rng)
 * for n = 25, 24, ...; and perplexity.cpp's `int(scale * rng() * aux.size())` pick.
 */
describe("llama-perplexity's task selection", () => {
  it("std::mt19937(1) gives the standard's first outputs", () => {
    const rng = new Mt19937(1);
    expect([1, 2, 3, 4, 5].map(() => rng.next())).toEqual([1791095845, 4282876139, 3093770124, 4005303368, 491263]);
  });
  it("uniform_int_distribution<size_t> draws as libstdc++ (Lemire)", () => {
    const small = new Mt19937(1);
    expect(Array.from({ length: 10 }, (_, i) => uniformBelow(small, 25 - i))).toEqual([10, 23, 16, 20, 0, 2, 5, 17, 2, 3]);
    const large = new Mt19937(1);
    expect(Array.from({ length: 8 }, (_, i) => uniformBelow(large, 10042 - i))).toEqual([4187, 10012, 7232, 9361, 1, 1285, 3034, 10025]);
  });
  it("Winogrande / multiple-choice subset: the float-scaled pick without replacement", () => {
    expect(pickWithoutReplacement(25, 10)).toEqual([10, 23, 16, 20, 0, 2, 5, 17, 19, 3]);
  });
  it("HellaSwag order removes each drawn task (indexes shift down)", () => {
    // Draws 10, 23, 16 over 25, 24, 23 remaining: 10; then 23 of [0..9,11..24] = 24; then 16 = 17.
    expect(hellaswagOrder(25, 3)).toEqual([10, 24, 17]);
  });
});

describe("task files", () => {
  it("HellaSwag: 6 lines per task; a bad count or gold index names the line", () => {
    const text = fs.readFileSync(path.join(fixtures, "hellaswag.txt"), "utf8");
    const all = parseHellaswag(text, "h.txt", 1000);
    expect(all.tasks.length).toBe(120);
    expect(all.selection).toMatch(/shuffled/);
    expect(new Set(all.tasks.map((t) => t.index)).size).toBe(120);
    expect(parseHellaswag(text, "h.txt", 400).tasks.length).toBe(120);
    expect(parseHellaswag(text, "h.txt", 5).tasks.map((t) => t.index)).toEqual(hellaswagOrder(120, 5));
    expect(() => parseHellaswag("a\n0\nb\nc\nd\ne\nf\n", "h.txt", 10)).toThrow(/h\.txt has 7 lines, not a multiple of 6 \(line 7 starts/);
    expect(() => parseHellaswag("a\nx\nb\nc\nd\ne\n", "h.txt", 10)).toThrow(/h\.txt line 2: expected the gold ending's index \(0-3\), got "x"/);
    expect(() => parseHellaswag("", "h.txt", 10)).toThrow(/holds no tasks/);
  });

  it("Winogrande: quoted sentences, skipped lines with reasons, and the last line dropped as llama.cpp does", () => {
    const text = fs.readFileSync(path.join(fixtures, "winogrande.csv"), "utf8");
    const all = parseWinogrande(text, "w.csv", undefined);
    expect(all.tasks.length).toBe(120);
    expect(all.skipped).toEqual([]); // the header line is skipped without a word
    expect(all.tasks.some((t) => t.first.includes(","))).toBe(true);
    expect(all.tasks.every((t) => !t.first.startsWith('"'))).toBe(true);
    const sub = parseWinogrande(text, "w.csv", 10);
    expect(sub.tasks.map((t) => t.index)).toEqual(pickWithoutReplacement(120, 10));
    const parsed = parseWinogrande('0,"A, then _ here",x,y,2\n1,no blank,x,y,1\n2,b,c\nlast,_,a,b,1\n', "w.csv", undefined);
    expect(parsed.tasks).toEqual([{ kind: "winogrande", index: 0, first: "A, then ", second: " here", choices: ["x", "y"], answer: 2 }]);
    expect(parsed.skipped).toEqual(['line 2: the sentence has no "_" to fill in', "line 3: expected 5 comma-separated fields (index,sentence,option1,option2,answer), found 3"]);
    expect(() => parseWinogrande("a,b\nc,d\n", "w.csv", undefined)).toThrow(/w\.csv holds no Winogrande tasks \(line 1: expected 5 comma-separated fields/);
  });

  it("multiple choice: reads what it writes, picks subsets by offset, names a bad record", () => {
    const bytes = fs.readFileSync(path.join(fixtures, "mc.bin"));
    const all = parseMultipleChoice(bytes, "mc.bin", undefined);
    expect(all.tasks.length).toBe(110);
    expect(all.tasks.every((t) => t.labels.filter((l) => l === 1).length === 1)).toBe(true);
    const sub = parseMultipleChoice(bytes, "mc.bin", 7);
    expect(sub.tasks).toEqual(pickWithoutReplacement(110, 7).map((i) => all.tasks[i]));
    const round = serializeMultipleChoice([{ question: "Q?", answers: ["a", "b"], labels: [0, 1] }]);
    expect(parseMultipleChoice(round, "x.bin", undefined).tasks).toEqual([{ kind: "mc", index: 0, question: "Q?", answers: ["a", "b"], labels: [0, 1] }]);
    expect(() => parseMultipleChoice(round.subarray(0, round.length - 6), "x.bin", undefined)).toThrow(/x\.bin record 1 of 1 \(byte 8\): mc1: the labels are cut off/);
    expect(() => parseMultipleChoice(Buffer.from("hello world\n"), "t.txt", undefined)).toThrow(/t\.txt is not a multiple-choice file: it claims \d+ tasks but is 12 bytes long/);
    const empty = serializeMultipleChoice([{ question: "Q?", answers: ["a", ""], labels: [1, 0] }]);
    expect(() => parseMultipleChoice(empty, "x.bin", undefined)).toThrow(/record 1 of 1 \(byte 8\): an empty answer/);
  });
});

describe("llama-perplexity's figures and printf layouts", () => {
  it("printf rounds exact ties to even, toFixed does not", () => {
    expect(cFixed(0.125, 2)).toBe("0.12");
    expect(cFixed(0.375, 2)).toBe("0.38");
    expect(cFixed(100 / 2048, 8)).toBe("0.04882812");
    expect(cFixed(-2.5, 0)).toBe("-2");
    expect(cFixed(1.005, 2)).toBe("1.00"); // 1.005 is below the tie in binary
    expect(cFixed(-4.8787804, 6, 10)).toBe(" -4.878780");
  });
  it("the HellaSwag row with its Wilson interval", () => {
    expect(tableRow("hellaswag", { task: 4, correct: 1, predicted: 0, scores: [] })).toBe("4\t25.00000000%\t[4.5587%, 69.9358%]\n");
    const w = wilson(33, 120);
    expect(w.low).toBeLessThan(0.275);
    expect(w.high).toBeGreaterThan(0.275);
  });
  it("Winogrande and multiple-choice finals in float", () => {
    expect(floatAccuracy(67, 120).p).toBe(Math.fround(67 / 120));
    expect(finalLines("winogrande", scoreOf("winogrande", 67, 120, 240))).toBe("\nFinal Winogrande score(120 tasks): 55.8333 +/- 4.5522\n");
    expect(finalLines("mc", scoreOf("mc", 45, 110, 319))).toBe("\nFinal result: 40.9091 +/- 4.7093\nRandom chance: 34.4828 +/- 4.5527\n");
  });
  it("the paired difference of two models", () => {
    const d = pairedDifference([true, true, false, true], [true, false, false, false]);
    expect(d.value).toBe(0.5);
    expect(d.standardError).toBeCloseTo(Math.sqrt(1 / 3 / 4), 12);
  });
});

import { planWinogrande } from "../../src/eval/tasks/plan.js";
import { planAll } from "../../src/eval/tasks/runTasks.js";

/** A toy tokenizer: BOS (1), then one token per character (its code). */
const charTokens = (text: string) => Uint32Array.from([1, ...Array.from(text, (c) => c.charCodeAt(0))]);

describe("the scoring plans", () => {
  it("a task longer than llama-perplexity's batch fails before scoring, naming it and a -c that fits", () => {
    const long = { kind: "hellaswag" as const, index: 6, context: "x".repeat(300), gold: 0, endings: ["a", "b", "c", "d"] as [string, string, string, string] };
    expect(() => planAll([long], charTokens, { batchTokens: 256, sequenceTokens: 256, ctx: 64 })).toThrow(
      /task 1 \(7 in the file\) needs 306 tokens, more than the 256 of -c 64 x 4 sequences \(llama-perplexity stops there too\)/,
    );
  });

  it("a choice that with its context exceeds one sequence's -c tokens fails before scoring, naming a -c that fits", () => {
    const task = { kind: "hellaswag" as const, index: 0, context: "x".repeat(60), gold: 0, endings: ["a", "b", "c", "y".repeat(80)] as [string, string, string, string] };
    expect(() => planAll([task], charTokens, { batchTokens: 256, sequenceTokens: 128, ctx: 128 })).toThrow(
      /task 1 \(1 in the file\): a choice with its context needs 142 tokens, more than one sequence's 128 \(-c\)/,
    );
  });

  it("Winogrande with a short tail reads llama.cpp's logits, including the FIXME: sentence 2's first score uses sentence 1's last logits", () => {
    // "ab_d": sentences "abXd" / "abYd"; 1 token after the choice (< 4), so the choice itself is scored.
    const plan = planWinogrande({ kind: "winogrande", index: 0, first: "ab", second: "d", choices: ["X", "Y"], answer: 1 }, charTokens);
    const { prefix, branches, prefixTargets } = plan.request;
    expect(Array.from(prefix)).toEqual([1, 97, 98]);
    // Sentence 1: the logits after "b" (prefix) predict X; sentence 2's first pair is llama.cpp's index
    // L0 = 2: the logits after sentence 1's last token ("d"), read for target Y.
    expect(prefixTargets).toEqual(["X".charCodeAt(0)]);
    expect(branches[0]!.tokens.length).toBe(2);
    expect(branches[0]!.targets[1]).toEqual(["Y".charCodeAt(0)]);
    expect(branches[1]!.tokens.length).toBe(0);
    expect(plan.requiredTokens).toBe(3 + 2 + 2);
  });
});
