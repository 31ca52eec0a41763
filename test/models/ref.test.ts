import { describe, expect, it } from "vitest";
import { formatReference, parseReference, pickQuantFile, quantOfFileName, splitPartNames } from "../../src/models/ref.js";
import { referenceForStorePath, storePathForHuggingFace, storePathForUrl } from "../../src/models/store.js";
import { sha256FromEtag } from "../../src/models/hash.js";
import { formatEta, formatProgressLine, RateMeter } from "../../src/io/pullProgress.js";
import { proxyFor } from "../../src/models/http.js";

describe("parseReference", () => {
  it.each([
    ["tiny", { kind: "bundled", name: "tiny" }],
    ["qwen2.5", { kind: "catalogue", name: "qwen2.5" }],
    ["Qwen2.5:0.5B", { kind: "catalogue", name: "qwen2.5", tag: "0.5b" }],
    ["llama3.2:1b@q8_0", { kind: "catalogue", name: "llama3.2", tag: "1b", quant: "Q8_0" }],
    ["hf:bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m", { kind: "hf-quant", user: "bartowski", repo: "Llama-3.2-1B-Instruct-GGUF", quant: "Q4_K_M" }],
    ["hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", { kind: "hf-quant", user: "Qwen", repo: "Qwen2.5-0.5B-Instruct-GGUF" }],
    ["hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", { kind: "hf-file", user: "Qwen", repo: "Qwen2.5-0.5B-Instruct-GGUF", file: "qwen2.5-0.5b-instruct-q4_k_m.gguf", branch: "main" }],
    ["hf:u/r/sub/dir/m.gguf#dev", { kind: "hf-file", user: "u", repo: "r", file: "sub/dir/m.gguf", branch: "dev" }],
    ["https://example.com/models/x.gguf?download=true", { kind: "url", url: "https://example.com/models/x.gguf?download=true" }],
    ["./models/x.gguf", { kind: "path", path: "./models/x.gguf" }],
    ["/abs/x.gguf", { kind: "path", path: "/abs/x.gguf" }],
    ["x.gguf", { kind: "path", path: "x.gguf" }],
  ])("%s", (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  it.each(["", "  ", "hf:onlyuser", "hf:u/r:", "name:tag:extra", "a@b@c", "hf:u/r:Q4:Q8", "https://"])("rejects %j", (input) => {
    expect(() => parseReference(input)).toThrow();
  });

  it("a catalogue name with a path for a tag is a bad catalogue tag, not a file path (qwen2.5:../../x)", () => {
    expect(() => parseReference("qwen2.5:../../x")).toThrow(/"qwen2\.5:\.\.\/\.\.\/x" is not a valid catalogue reference: the tag "\.\.\/\.\.\/x"/);
    expect(parseReference("C:/models/x.gguf")).toEqual({ kind: "path", path: "C:/models/x.gguf" });
  });

  it("names the unsupported scheme of a URL that is not https (it used to become a local path, ftp:/x/y.gguf)", () => {
    expect(() => parseReference("ftp://x/y.gguf")).toThrow(/ftp:\/\/ is not supported/);
    expect(() => parseReference("s3://bucket/m.gguf")).toThrow(/s3:\/\/ is not supported/);
  });

  it("formats back to a canonical reference", () => {
    expect(formatReference(parseReference("Llama3.2:1B@q8_0"))).toBe("llama3.2:1b@Q8_0");
    expect(formatReference(parseReference("hf:u/r:q4_k_m"))).toBe("hf:u/r:Q4_K_M");
    expect(formatReference(parseReference("hf:u/r/f.gguf#main"))).toBe("hf:u/r/f.gguf");
  });
});

describe("quant files and split parts", () => {
  const files = ["README.md", "model-Q4_K_M.gguf", "model-Q4_K_S.gguf", "model-Q8_0.gguf", "big/model-F16-00001-of-00002.gguf", "big/model-F16-00002-of-00002.gguf", "model.q5_k_m.gguf"];
  it("picks the file whose name carries the quant as its own token", () => {
    expect(pickQuantFile(files, "Q4_K_M")).toBe("model-Q4_K_M.gguf");
    expect(pickQuantFile(files, "q5_k_m")).toBe("model.q5_k_m.gguf");
    expect(pickQuantFile(files, "F16")).toBe("big/model-F16-00001-of-00002.gguf");
    expect(pickQuantFile(files, "Q4_K")).toBeUndefined();
    expect(pickQuantFile(files, "Q2_K")).toBeUndefined();
  });
  it("names every part of a split GGUF", () => {
    expect(splitPartNames("m-00002-of-00003.gguf")).toEqual(["m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf"]);
    expect(splitPartNames("m.gguf")).toEqual(["m.gguf"]);
  });
  it("reads the quant from a file name", () => {
    expect(quantOfFileName("qwen2.5-0.5b-instruct-q4_k_m.gguf")).toBe("Q4_K_M");
    expect(quantOfFileName("stories260K-f32.gguf")).toBe("F32");
    expect(quantOfFileName("Llama-3.2-1B-Instruct-IQ4_XS.gguf")).toBe("IQ4_XS");
    expect(quantOfFileName("model.gguf")).toBeUndefined();
  });
});

describe("store paths, etags, proxies and progress text", () => {
  it("maps references to store paths and back", () => {
    expect(storePathForHuggingFace("Qwen", "Repo-GGUF", "sub/f.gguf")).toBe("hf/Qwen/Repo-GGUF/sub/f.gguf");
    expect(storePathForHuggingFace("u", "r", "f.gguf", "dev")).toBe("hf/u/r/dev/f.gguf");
    expect(storePathForUrl("https://example.com:8443/a/b%20c.gguf?x=1")).toBe("url/example.com_8443/b_c.gguf");
    expect(storePathForUrl("https://example.com/../../etc/passwd")).toBe("url/example.com/passwd");
    expect(referenceForStorePath("hf/u/r/f.gguf")).toBe("hf:u/r/f.gguf");
  });
  it("takes only a 64-hex ETag as a sha256", () => {
    const hex = "a".repeat(64);
    expect(sha256FromEtag(`"${hex}"`)).toBe(hex);
    expect(sha256FromEtag(`W/"${hex.toUpperCase()}"`)).toBe(hex);
    expect(sha256FromEtag(`"${"b".repeat(40)}"`)).toBeUndefined();
    expect(sha256FromEtag(undefined)).toBeUndefined();
  });
  it("honours HTTPS_PROXY and NO_PROXY", () => {
    const env = { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: "localhost,.internal.example,10.0.0.1:8080" };
    expect(proxyFor(new URL("https://huggingface.co/x"), env)?.host).toBe("proxy:3128");
    expect(proxyFor(new URL("https://a.internal.example/x"), env)).toBeUndefined();
    expect(proxyFor(new URL("http://localhost:1/x"), { HTTP_PROXY: "proxy:1", NO_PROXY: "localhost" })).toBeUndefined();
    expect(proxyFor(new URL("http://10.0.0.1:8080/"), { HTTP_PROXY: "http://p:1", NO_PROXY: "10.0.0.1:8080" })).toBeUndefined();
    expect(proxyFor(new URL("http://10.0.0.1:9090/"), { HTTP_PROXY: "http://p:1", NO_PROXY: "10.0.0.1:8080" })?.host).toBe("p:1");
    expect(proxyFor(new URL("https://x.org/"), {})).toBeUndefined();
  });
  it("measures speed over a window and formats progress with ETA", () => {
    const meter = new RateMeter(3000);
    meter.add(0, 0);
    meter.add(5_000_000, 1000);
    meter.add(10_000_000, 2000);
    expect(meter.bytesPerSecond()).toBe(5_000_000);
    expect(formatProgressLine("m", 10_000_000, 100_000_000, 5_000_000)).toBe("pulling m  10.0 MB / 100 MB (10%)  5.00 MB/s  ETA 18s");
    expect(formatEta(125)).toBe("2m05s");
    expect(formatEta(undefined)).toBe("-");
  });
});
