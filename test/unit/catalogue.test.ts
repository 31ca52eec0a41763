import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  canonicalRef,
  catalogueQuant,
  findCatalogueEntry,
  levenshtein,
  listCatalogue,
  loadCatalogue,
  parseCatalogueRef,
  suggestNames,
  validateCatalogue,
  type Catalogue,
  type CatalogueModel,
} from "../../src/models/catalogue.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const modelsJsonPath = fileURLToPath(new URL("../../models.json", import.meta.url));
const rawJson: unknown = JSON.parse(readFileSync(modelsJsonPath, "utf8"));

/** A deep copy of the real catalogue to break on purpose. */
function fresh(): { version: number; models: Record<string, unknown>[]; $schema?: string } {
  return JSON.parse(JSON.stringify(rawJson)) as { version: number; models: Record<string, unknown>[] };
}

function entry(data: ReturnType<typeof fresh>, ref: string): Record<string, unknown> {
  const found = data.models.find((m) => canonicalRef(m as unknown as CatalogueModel) === ref);
  if (found === undefined) throw new Error(`no ${ref} in models.json`);
  return found;
}

function quants(model: Record<string, unknown>): Record<string, Record<string, unknown>> {
  return model.quants as Record<string, Record<string, unknown>>;
}

const cat: Catalogue = loadCatalogue();

describe("models.json", () => {
  it("is valid", () => {
    expect(validateCatalogue(rawJson)).toEqual([]);
  });

  it("is what loadCatalogue reads by default, and is cached", () => {
    expect(loadCatalogue(modelsJsonPath)).toEqual(rawJson);
    expect(loadCatalogue()).toBe(cat);
  });

  it("points at its schema", () => {
    expect((rawJson as { $schema?: string }).$schema).toBe("./models.schema.json");
    const schema = JSON.parse(readFileSync(new URL("../../models.schema.json", import.meta.url), "utf8")) as Record<string, unknown>;
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
  });

  it("offers at least 12 downloadable models from at least 5 families", () => {
    const remote = cat.models.filter((m) => m.repo !== undefined);
    expect(remote.length).toBeGreaterThanOrEqual(12);
    expect(new Set(remote.map((m) => m.family)).size).toBeGreaterThanOrEqual(5);
  });

  it("defaults to Q4_K_M wherever Q4_K_M is offered", () => {
    for (const m of cat.models) {
      if ("Q4_K_M" in m.quants) expect(m.defaultQuant, canonicalRef(m)).toBe("Q4_K_M");
    }
  });

  it("pins every downloadable model to a revision and records sha256 and size of every file", () => {
    for (const m of cat.models.filter((x) => x.repo !== undefined)) {
      expect(m.revision, canonicalRef(m)).toMatch(/^[0-9a-f]{40}$/);
      for (const [q, info] of Object.entries(m.quants)) {
        expect(info.sha256, `${canonicalRef(m)}@${q}`).toMatch(/^[0-9a-f]{64}$/);
        expect(info.sizeBytes, `${canonicalRef(m)}@${q}`).toBeGreaterThan(0);
      }
    }
  });

  it("has exactly one bundled model, tiny", () => {
    const bundled = cat.models.filter((m) => m.bundled !== undefined);
    expect(bundled.map((m) => m.name)).toEqual(["tiny"]);
    const tiny = bundled[0]!;
    expect(tiny.tag).toBeUndefined();
    expect(tiny.bundled).toBe("assets/models/stories260K-Q8_0.gguf");
    expect(tiny.contextLength).toBe(512);
    expect(tiny.license).toBe("mit");
  });

  it("tiny's sha256 and size match the bundled file", (ctx) => {
    const tiny = findCatalogueEntry(cat, "tiny")!;
    const file = `${root}${tiny.bundled!}`;
    if (!existsSync(file)) {
      console.warn(`skipping: ${tiny.bundled} is not in this checkout yet`);
      ctx.skip(`${tiny.bundled} is not in this checkout yet`);
    }
    const bytes = readFileSync(file);
    const q = tiny.quants[tiny.defaultQuant]!;
    expect(bytes.length).toBe(q.sizeBytes);
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(q.sha256);
  });
});

describe("validateCatalogue catches", () => {
  function problemsAfter(mutate: (data: ReturnType<typeof fresh>) => void): string[] {
    const data = fresh();
    mutate(data);
    return validateCatalogue(data);
  }

  it("non-objects and a wrong version", () => {
    expect(validateCatalogue(null)).toEqual(["catalogue must be a JSON object"]);
    expect(validateCatalogue([])).toEqual(["catalogue must be a JSON object"]);
    expect(problemsAfter((d) => (d.version = 2))).toEqual([expect.stringContaining("version must be 1")]);
    expect(validateCatalogue({ version: 1 })).toEqual(["models must be an array"]);
    expect(validateCatalogue({ version: 1, models: [] })).toEqual(["models must not be empty"]);
  });

  it.each(["name", "description", "family", "parameters", "license", "defaultQuant"])("a missing %s", (field) => {
    const problems = problemsAfter((d) => delete entry(d, "qwen2.5:0.5b")[field]);
    expect(problems).toContainEqual(expect.stringContaining(`missing or empty "${field}"`));
  });

  it("missing aliases, quants and contextLength", () => {
    expect(problemsAfter((d) => delete entry(d, "qwen2.5:0.5b").aliases)).toEqual([
      expect.stringContaining('"aliases" must be an array'),
    ]);
    expect(problemsAfter((d) => delete entry(d, "qwen2.5:0.5b").quants)).toEqual([
      expect.stringContaining('"quants" must be a non-empty object'),
    ]);
    expect(problemsAfter((d) => (entry(d, "qwen2.5:0.5b").contextLength = 0))).toEqual([
      expect.stringContaining("contextLength must be a positive integer"),
    ]);
  });

  it("a duplicate name:tag", () => {
    const problems = problemsAfter((d) => (entry(d, "qwen2.5:1.5b").tag = "0.5b"));
    expect(problems).toContainEqual(expect.stringContaining('duplicate reference "qwen2.5:0.5b"'));
  });

  it("a duplicate alias", () => {
    const problems = problemsAfter((d) => (entry(d, "qwen2.5:1.5b").aliases = ["qwen2.5:0.5b-instruct"]));
    expect(problems).toEqual([expect.stringContaining('duplicate alias "qwen2.5:0.5b-instruct"')]);
  });

  it("an alias that shadows another model's reference or name", () => {
    expect(problemsAfter((d) => (entry(d, "qwen2.5:1.5b").aliases = ["llama3.2:1b"]))).toEqual([
      expect.stringContaining('alias "llama3.2:1b" duplicates the reference'),
    ]);
    expect(problemsAfter((d) => (entry(d, "qwen2.5:1.5b").aliases = ["mistral"]))).toEqual([
      expect.stringContaining('shadows the model name "mistral"'),
    ]);
  });

  it("a defaultQuant that is not offered", () => {
    const problems = problemsAfter((d) => delete quants(entry(d, "qwen2.5:0.5b")).Q4_K_M);
    expect(problems).toEqual([expect.stringContaining('defaultQuant "Q4_K_M" is not among its quants')]);
  });

  it("a file that is not .gguf or does not name its quant", () => {
    expect(
      problemsAfter((d) => (quants(entry(d, "qwen2.5:0.5b")).Q4_K_M!.file = "qwen2.5-0.5b-instruct-q4_k_m.bin")),
    ).toEqual([expect.stringContaining("must end in .gguf")]);
    expect(
      problemsAfter((d) => (quants(entry(d, "qwen2.5:0.5b")).Q4_K_M!.file = "qwen2.5-0.5b-instruct-q8_0-copy.gguf")),
    ).toEqual([expect.stringContaining('does not contain the quant name "Q4_K_M"')]);
  });

  it("a bad sha256", () => {
    for (const bad of ["abc", "A".repeat(64), "g".repeat(64), 42]) {
      const problems = problemsAfter((d) => (quants(entry(d, "llama3.2:1b")).Q4_K_M!.sha256 = bad));
      expect(problems, String(bad)).toEqual([expect.stringContaining("sha256 must be 64 lowercase hex")]);
    }
  });

  it("sizes that are not positive integers", () => {
    for (const bad of [0, -1, 1.5, "100"]) {
      const problems = problemsAfter((d) => (quants(entry(d, "llama3.2:1b")).Q4_K_M!.sizeBytes = bad));
      expect(problems, String(bad)).toEqual([expect.stringContaining("sizeBytes must be a positive integer")]);
    }
    expect(problemsAfter((d) => (quants(entry(d, "llama3.2:1b")).Q4_K_M!.approxSizeBytes = -5))).toEqual([
      expect.stringContaining("approxSizeBytes must be a positive integer"),
    ]);
  });

  it("a repo that is not user/repo, and a source that is neither or both", () => {
    for (const bad of ["Qwen2.5-0.5B-Instruct-GGUF", "Qwen/a/b", "https://huggingface.co/Qwen/x", ""]) {
      const problems = problemsAfter((d) => (entry(d, "qwen2.5:0.5b").repo = bad));
      expect(problems, bad).toContainEqual(expect.stringContaining("must be a Hugging Face \"user/repo\""));
    }
    expect(problemsAfter((d) => delete entry(d, "qwen2.5:0.5b").repo)).toContainEqual(
      expect.stringContaining('needs exactly one of "repo" or "bundled"'),
    );
    expect(problemsAfter((d) => (entry(d, "tiny").repo = "a/b"))).toContainEqual(
      expect.stringContaining('needs exactly one of "repo" or "bundled"'),
    );
  });

  it("a bad revision or bundled path", () => {
    expect(problemsAfter((d) => (entry(d, "qwen2.5:0.5b").revision = "main"))).toEqual([
      expect.stringContaining("revision must be a 40-character"),
    ]);
    expect(problemsAfter((d) => (entry(d, "tiny").bundled = "../outside/stories260K-Q8_0.gguf"))).toContainEqual(
      expect.stringContaining("must be a relative path"),
    );
  });

  it("bad names, tags, quant names and unknown fields", () => {
    expect(problemsAfter((d) => (entry(d, "qwen2.5:0.5b").name = "Qwen 2.5"))).toContainEqual(
      expect.stringContaining("must be lowercase"),
    );
    expect(problemsAfter((d) => (entry(d, "qwen2.5:0.5b").tag = "0.5b@x"))).toContainEqual(
      expect.stringContaining("tag"),
    );
    expect(
      problemsAfter((d) => {
        const q = quants(entry(d, "qwen2.5:0.5b"));
        q.q4_k_m = q.Q4_K_M!;
        delete q.Q4_K_M;
        entry(d, "qwen2.5:0.5b").defaultQuant = "q4_k_m";
      }),
    ).toContainEqual(expect.stringContaining("quant name must be uppercase"));
    expect(problemsAfter((d) => (quants(entry(d, "qwen2.5:0.5b")).Q4_K_M!.sha265 = "x"))).toEqual([
      expect.stringContaining('unknown field "sha265"'),
    ]);
    expect(problemsAfter((d) => (entry(d, "qwen2.5:0.5b").licence = "mit"))).toEqual([
      expect.stringContaining('unknown field "licence"'),
    ]);
  });

  it("a name with several entries and no default, or two defaults", () => {
    expect(problemsAfter((d) => delete entry(d, "qwen2.5:7b").default)).toEqual([
      expect.stringContaining('name "qwen2.5" has 4 entries but none is marked "default"'),
    ]);
    expect(problemsAfter((d) => (entry(d, "qwen2.5:0.5b").default = true))).toEqual([
      expect.stringContaining('name "qwen2.5" has 2 entries marked default'),
    ]);
  });

  it("loadCatalogue refuses an invalid file", () => {
    expect(() => loadCatalogue(fileURLToPath(new URL("./does-not-exist.json", import.meta.url)))).toThrow(
      /cannot read the model catalogue/,
    );
  });
});

describe("findCatalogueEntry", () => {
  it("finds name:tag, case-insensitively, with the tag apart or inside the name", () => {
    const q = findCatalogueEntry(cat, "qwen2.5", "0.5b");
    expect(q?.repo).toBe("Qwen/Qwen2.5-0.5B-Instruct-GGUF");
    expect(q?.quants.Q4_K_M?.file).toBe("qwen2.5-0.5b-instruct-q4_k_m.gguf");
    expect(findCatalogueEntry(cat, "qwen2.5:0.5b")).toBe(q);
    expect(findCatalogueEntry(cat, "Qwen2.5", "0.5B")).toBe(q);
    expect(findCatalogueEntry(cat, "QWEN2.5:0.5B@Q8_0")).toBe(q);
  });

  it("finds aliases", () => {
    expect(findCatalogueEntry(cat, "qwen2.5:0.5b-instruct")).toBe(findCatalogueEntry(cat, "qwen2.5", "0.5b"));
    expect(findCatalogueEntry(cat, "qwen2.5", "0.5b-instruct")).toBe(findCatalogueEntry(cat, "qwen2.5", "0.5b"));
    expect(findCatalogueEntry(cat, "stories260k")).toBe(findCatalogueEntry(cat, "tiny"));
    expect(findCatalogueEntry(cat, "phi3.5:mini")?.repo).toBe("bartowski/Phi-3.5-mini-instruct-GGUF");
  });

  it("picks the default tag for a bare name, or `latest`", () => {
    const defaults = cat.models.filter((m) => m.default === true);
    expect(defaults.length).toBeGreaterThan(0);
    for (const d of defaults) {
      expect(findCatalogueEntry(cat, d.name)).toBe(d);
      expect(findCatalogueEntry(cat, d.name, "latest")).toBe(d);
      expect(findCatalogueEntry(cat, `${d.name}:latest`)).toBe(d);
    }
    expect(findCatalogueEntry(cat, "qwen2.5")?.tag).toBe("7b");
    expect(findCatalogueEntry(cat, "llama3.2")?.tag).toBe("3b");
    // a name with a single entry needs no default mark
    expect(findCatalogueEntry(cat, "mistral")?.tag).toBe("7b");
    expect(findCatalogueEntry(cat, "tiny")?.bundled).toBe("assets/models/stories260K-Q8_0.gguf");
  });

  it("every name without a tag resolves", () => {
    for (const name of new Set(cat.models.map((m) => m.name))) {
      expect(findCatalogueEntry(cat, name), name).toBeDefined();
    }
  });

  it("returns undefined for unknown names and tags", () => {
    expect(findCatalogueEntry(cat, "qwen2.6:0.5b")).toBeUndefined();
    expect(findCatalogueEntry(cat, "qwen2.5", "99b")).toBeUndefined();
    expect(findCatalogueEntry(cat, "")).toBeUndefined();
    expect(findCatalogueEntry(cat, ":0.5b")).toBeUndefined();
  });
});

describe("catalogueQuant and parseCatalogueRef", () => {
  it("pick the default or a named quant", () => {
    const m = findCatalogueEntry(cat, "llama3.2:1b")!;
    expect(catalogueQuant(m)?.quant).toBe("Q4_K_M");
    expect(catalogueQuant(m, "q8_0")?.info.file).toBe("Llama-3.2-1B-Instruct-Q8_0.gguf");
    expect(catalogueQuant(m, "Q2_K")).toBeUndefined();
  });

  it("split name[:tag][@QUANT]", () => {
    expect(parseCatalogueRef("llama3.2:1b@q8_0")).toEqual({ name: "llama3.2", tag: "1b", quant: "Q8_0" });
    expect(parseCatalogueRef(" Qwen2.5 ")).toEqual({ name: "qwen2.5" });
    expect(parseCatalogueRef("tiny@Q8_0")).toEqual({ name: "tiny", quant: "Q8_0" });
    for (const bad of ["", ":1b", "a:", "a@", "a:b:c", "a@b@c"]) expect(parseCatalogueRef(bad), bad).toBeUndefined();
  });
});

describe("suggestNames", () => {
  it("suggests qwen2.5:0.5b for qwen2.6:0.5b", () => {
    const suggestions = suggestNames(cat, "qwen2.6:0.5b");
    expect(suggestions).toContain("qwen2.5:0.5b");
    expect(suggestions[0]).toBe("qwen2.5:0.5b");
    expect(suggestions.length).toBeLessThanOrEqual(3);
  });

  it("handles name typos, prefixes, quants and max", () => {
    expect(suggestNames(cat, "lama3.2")).toContain("llama3.2");
    expect(suggestNames(cat, "mistrl:7b")).toContain("mistral:7b");
    expect(suggestNames(cat, "qwen2.6:0.5b@Q8_0")[0]).toBe("qwen2.5:0.5b");
    expect(suggestNames(cat, "smol")[0]).toMatch(/^smollm2/);
    expect(suggestNames(cat, "qwen", 5)).toHaveLength(5);
    expect(suggestNames(cat, "qwen2.6:0.5b", 1)).toEqual(["qwen2.5:0.5b"]);
    expect(suggestNames(cat, "completely-unrelated-model-name")).toEqual([]);
    expect(suggestNames(cat, "")).toEqual([]);
  });

  it("levenshtein is an edit distance", () => {
    expect(levenshtein("kitten", "sitting")).toBe(3);
    expect(levenshtein("", "abc")).toBe(3);
    expect(levenshtein("same", "same")).toBe(0);
  });
});

describe("listCatalogue", () => {
  it("lists every entry with its canonical reference and default quant size", () => {
    const rows = listCatalogue(cat);
    expect(rows).toHaveLength(cat.models.length);
    const q = rows.find((r) => r.ref === "qwen2.5:0.5b")!;
    expect(q).toMatchObject({ name: "qwen2.5", tag: "0.5b", isDefault: false, bundled: false, defaultQuant: "Q4_K_M" });
    expect(q.sizeBytes).toBe(491400032);
    expect(q.sizeIsApproximate).toBe(false);
    expect(q.quants).toEqual(["Q4_K_M", "Q8_0"]);
    expect(rows.find((r) => r.ref === "qwen2.5:7b")?.isDefault).toBe(true);
    expect(rows.find((r) => r.ref === "tiny")).toMatchObject({ bundled: true, isDefault: true });
    expect(new Set(rows.map((r) => r.ref)).size).toBe(rows.length);
  });
});
