import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { corpusBleu, tokenize13a } from "../../src/eval/metrics/bleu.js";
import { chrfFromStats, chrfSegmentStats } from "../../src/eval/metrics/chrf.js";
import { porterStem } from "../../src/eval/metrics/porter.js";
import { rougeScores } from "../../src/eval/metrics/rouge.js";
import { sumStats } from "../../src/eval/metrics/bleu.js";
import { repoRoot } from "../helpers/shared.js";

/**
 * Reference values:
 * - metric-cases.json `expected`: computed once with sacrebleu 2.6.0 (BLEU(), CHRF() defaults,
 *   corpus_score) and NLTK 3.10.3's PorterStemmer inside rouge-score's scoring logic, by
 *   test/fixtures/eval/reference/metrics-reference.py on the cases make-metric-cases.py wrote.
 * - The "rouge-score-testdata" case is rouge-score's own test data (google-research/rouge/testdata
 *   target.txt, prediction.txt lines 1-2); its published expectations in rouge_scorer_test.py
 *   (testRouge1AgainstRouge155 etc., from ROUGE-1.5.5) are asserted separately below.
 * - porter-nltk.tsv: NLTK 3.10.3 PorterStemmer().stem(word) for 3,042 WikiText-2 words and the
 *   algorithm's classic examples.
 */
const fixtures = path.join(repoRoot, "test", "fixtures", "eval");
const cases = JSON.parse(fs.readFileSync(path.join(fixtures, "metric-cases.json"), "utf8")) as Array<{
  name: string;
  hyps: string[];
  refs: string[][];
  expected: { bleu: number; chrf: number; rouge: Record<string, number>; rougeStemmed: Record<string, number> };
}>;

describe("metrics equal to the reference packages", () => {
  for (const c of cases) {
    it(`${c.name}: corpus BLEU and chrF as sacrebleu, ROUGE as rouge-score (with and without the stemmer)`, () => {
      expect(corpusBleu(c.hyps, c.refs).score).toBeCloseTo(c.expected.bleu, 9);
      const chrf = chrfFromStats(sumStats(c.hyps.map((h, i) => chrfSegmentStats(h, c.refs[i]!))));
      expect(chrf).toBeCloseTo(c.expected.chrf, 9);
      for (const stem of [false, true]) {
        const expected = stem ? c.expected.rougeStemmed : c.expected.rouge;
        const per = c.hyps.map((h, i) => rougeScores(h, c.refs[i]!, stem));
        for (const key of ["rouge1", "rouge2", "rougeL"] as const) {
          expect(per.reduce((s, r) => s + r[key], 0) / per.length).toBeCloseTo(expected[key]!, 9);
        }
      }
    });
  }

  it("rouge-score's published expectations (rouge_scorer_test.py, from ROUGE-1.5.5)", () => {
    const c = cases.find((x) => x.name === "rouge-score-testdata")!;
    const [t0, t1] = [c.refs[0]!, c.refs[1]!];
    const [p0, p1] = [c.hyps[0]!, c.hyps[1]!];
    expect(rougeScores(p0, t0, false).rouge1).toBeCloseTo(0.51163, 5);
    expect(rougeScores(p1, t1, false).rouge1).toBeCloseTo(0.5, 5);
    expect(rougeScores(p1, t1, true).rouge1).toBeCloseTo(0.52941, 5);
    expect(rougeScores(p0, t0, false).rouge2).toBeCloseTo(0.39024, 5);
    expect(rougeScores(p1, t1, true).rouge2).toBeCloseTo(0.36364, 5);
    expect(rougeScores(p1, t1, false).rougeL).toBeCloseTo(0.5, 5);
    expect(rougeScores("testing", ["testing one two"], false).rouge1).toBeCloseTo(0.5, 12);
    expect(rougeScores("testing two", ["testing one two"], false).rougeL).toBeCloseTo(0.8, 12);
    expect(rougeScores("", ["testing one two"], false)).toEqual({ rouge1: 0, rouge2: 0, rougeL: 0 });
  });

  it("NLTK's Porter stemmer, word for word", () => {
    const rows = fs
      .readFileSync(path.join(fixtures, "porter-nltk.tsv"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split("\t") as [string, string]);
    expect(rows.length).toBeGreaterThan(3000);
    const wrong = rows.filter(([w, s]) => porterStem(w) !== s).map(([w, s]) => `${w}: ${porterStem(w)} != ${s}`);
    expect(wrong).toEqual([]);
  });

  it("13a tokenisation (expected strings printed by sacrebleu 2.6.0's Tokenizer13a)", () => {
    expect(tokenize13a("Hello, world! It costs $1,000.50 -- e-mail me at a&amp;b.")).toBe("Hello , world ! It costs $ 1,000.50 -- e-mail me at a & b .");
    expect(tokenize13a("1990-2000 (approx.)")).toBe("1990 - 2000 ( approx . )");
  });
});
