/**
 * Model references, parsed without touching the disk or the network:
 *   tiny                         the bundled demo model
 *   qwen2.5:0.5b@Q8_0            catalogue name[:tag][@QUANT]
 *   hf:USER/REPO/FILE.gguf       one file of a Hugging Face repo (optionally #branch)
 *   hf:USER/REPO:QUANT           the file of that quant in a Hugging Face repo (QUANT optional)
 *   https://host/x.gguf          any URL
 *   ./x.gguf, /abs/x.gguf        a local file
 */
export type ModelReference =
  | { kind: "bundled"; name: string }
  | { kind: "path"; path: string }
  | { kind: "catalogue"; name: string; tag?: string; quant?: string }
  | { kind: "hf-file"; user: string; repo: string; file: string; branch: string }
  | { kind: "hf-quant"; user: string; repo: string; quant?: string }
  | { kind: "url"; url: string };

export const BUNDLED_NAMES = new Set(["tiny"]);

const HF_PREFIXES = ["hf://", "huggingface://", "hf:", "huggingface:", "hf.co/", "huggingface.co/"];
const CATALOGUE_REF = /^[a-z0-9][a-z0-9._-]*(:[a-z0-9][a-z0-9._-]*)?(@[a-z0-9_]+)?$/i;
const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class ReferenceError extends Error {}

function looksLikePath(ref: string): boolean {
  return ref.includes("/") || ref.includes("\\") || ref.startsWith(".") || ref.startsWith("~") || ref.toLowerCase().endsWith(".gguf");
}

/** Parses one reference. Throws ReferenceError (with a message fit for the user) when it has no valid form. */
export function parseReference(raw: string): ModelReference {
  const ref = raw.trim();
  if (ref === "") throw new ReferenceError("no model given");
  if (BUNDLED_NAMES.has(ref.toLowerCase())) return { kind: "bundled", name: ref.toLowerCase() };
  const hfPrefix = HF_PREFIXES.find((p) => ref.toLowerCase().startsWith(p));
  if (hfPrefix !== undefined) return parseHuggingFace(ref.slice(hfPrefix.length), ref);
  if (/^https?:\/\//i.test(ref)) {
    try {
      new URL(ref);
    } catch {
      throw new ReferenceError(`"${ref}" is not a valid URL`);
    }
    return { kind: "url", url: ref };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(ref);
  if (scheme) throw new ReferenceError(`"${ref}": ${scheme[1]}:// is not supported (https://, hf: and local paths are)`);
  // `name:tag` is a catalogue reference even when the tag looks like a path (`qwen2.5:../../x`);
  // a one-letter name is a Windows drive (`C:\\models\\x.gguf`).
  const tagged = /^([a-z0-9][a-z0-9._-]+):(.*)$/i.exec(ref);
  if (tagged !== null && !CATALOGUE_REF.test(ref)) {
    throw new ReferenceError(`"${ref}" is not a valid catalogue reference: the tag "${tagged[2]}" may hold only letters, digits, ".", "_" and "-" (then @QUANT)`);
  }
  if (looksLikePath(ref)) return { kind: "path", path: ref };
  if (CATALOGUE_REF.test(ref)) {
    const [base = "", quant] = ref.split("@");
    const [name = "", tag] = base.split(":");
    return {
      kind: "catalogue",
      name: name.toLowerCase(),
      ...(tag !== undefined ? { tag: tag.toLowerCase() } : {}),
      ...(quant !== undefined ? { quant: quant.toUpperCase() } : {}),
    };
  }
  throw new ReferenceError(`"${ref}" is not a model reference`);
}

function parseHuggingFace(rest: string, full: string): ModelReference {
  const hashAt = rest.indexOf("#");
  const branch = hashAt >= 0 ? rest.slice(hashAt + 1) || "main" : "main";
  const body = hashAt >= 0 ? rest.slice(0, hashAt) : rest;
  const [user = "", repoPart = "", ...fileParts] = body.split("/");
  if (fileParts.length > 0 && fileParts.join("/") !== "") {
    const file = fileParts.join("/");
    if (!HF_NAME.test(user) || !HF_NAME.test(repoPart)) throw new ReferenceError(`"${full}" is not a valid Hugging Face reference`);
    return { kind: "hf-file", user, repo: repoPart, file, branch };
  }
  const [repo = "", quant, ...extra] = repoPart.split(":");
  if (!HF_NAME.test(user) || !HF_NAME.test(repo) || extra.length > 0 || quant === "") {
    throw new ReferenceError(`"${full}" is not a valid Hugging Face reference (expected hf:USER/REPO:QUANT or hf:USER/REPO/FILE.gguf)`);
  }
  return { kind: "hf-quant", user, repo, ...(quant !== undefined ? { quant: quant.toUpperCase() } : {}) };
}

/** The reference written back in its canonical form (what the manifest records). */
export function formatReference(ref: ModelReference): string {
  switch (ref.kind) {
    case "bundled":
      return ref.name;
    case "path":
      return ref.path;
    case "catalogue":
      return `${ref.name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.quant !== undefined ? `@${ref.quant}` : ""}`;
    case "hf-file":
      return `hf:${ref.user}/${ref.repo}/${ref.file}${ref.branch !== "main" ? `#${ref.branch}` : ""}`;
    case "hf-quant":
      return `hf:${ref.user}/${ref.repo}${ref.quant !== undefined ? `:${ref.quant}` : ""}`;
    case "url":
      return ref.url;
  }
}

/** Split GGUF parts: `name-00001-of-00003.gguf`. */
const SPLIT_PART = /-(\d{5})-of-(\d{5})\.gguf$/i;

export function splitPartInfo(fileName: string): { part: number; parts: number } | undefined {
  const match = SPLIT_PART.exec(fileName);
  if (!match) return undefined;
  return { part: Number(match[1]), parts: Number(match[2]) };
}

/** Every part's name of a split GGUF, given any one of them; a single file gives itself. */
export function splitPartNames(fileName: string): string[] {
  const info = splitPartInfo(fileName);
  if (info === undefined || info.parts <= 1) return [fileName];
  const pad = (n: number) => String(n).padStart(5, "0");
  return Array.from({ length: info.parts }, (_, i) => fileName.replace(SPLIT_PART, `-${pad(i + 1)}-of-${pad(info.parts)}.gguf`));
}

/**
 * Picks the file of a quant among a repo's GGUF files: the quant name must appear as its own token
 * (`model-Q4_K_M.gguf`, `model.q4_k_m.gguf`), and split files resolve to their first part.
 */
export function pickQuantFile(files: string[], quant: string): string | undefined {
  const wanted = quant.toLowerCase();
  const candidates = files.filter((file) => {
    if (!file.toLowerCase().endsWith(".gguf")) return false;
    const base = file.split("/").pop()!.toLowerCase().replace(SPLIT_PART, ".gguf").replace(/\.gguf$/, "");
    const tokens = base.split(/[-.]/);
    return tokens.includes(wanted) || base.endsWith(`-${wanted}`) || base.endsWith(`.${wanted}`) || base.endsWith(`_${wanted}`);
  });
  const whole = candidates.find((file) => splitPartInfo(file) === undefined);
  if (whole !== undefined) return whole;
  return candidates.find((file) => splitPartInfo(file)?.part === 1);
}

/** Quant names found in GGUF file names (for "this repo has …" messages). */
export function quantOfFileName(fileName: string): string | undefined {
  const base = fileName.split("/").pop()!.replace(SPLIT_PART, ".gguf").replace(/\.gguf$/i, "");
  const match = /(?:^|[-._])((?:I?Q\d+_[A-Z0-9_]+)|(?:I?Q\d+)|F16|BF16|F32)$/i.exec(base);
  return match?.[1]?.toUpperCase();
}
