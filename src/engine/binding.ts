import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

// What node-llama-cpp ships, read from its files without loading it (cheap enough for start-up paths).

let packageDir: { dir: string | undefined } | undefined;

export function nodeLlamaCppDir(): string | undefined {
  if (packageDir) return packageDir.dir;
  try {
    const require = createRequire(import.meta.url);
    packageDir = { dir: path.dirname(path.dirname(require.resolve("node-llama-cpp"))) };
  } catch {
    packageDir = { dir: undefined };
  }
  return packageDir.dir;
}

export function nodeLlamaCppVersion(): string {
  const dir = nodeLlamaCppDir();
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir ?? "", "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The llama.cpp release tag node-llama-cpp ships (llama/llama.cpp.info.json). */
export function llamaCppRelease(): string {
  try {
    const info = fs.readFileSync(path.join(nodeLlamaCppDir() ?? "", "llama", "llama.cpp.info.json"), "utf8");
    return (JSON.parse(info) as { tag?: string }).tag ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * The llama.cpp build node-llama-cpp ships, as llama-bench names it: the commit at the head of
 * llama/gitRelease.bundle (a git bundle's text header) and build number 1, because that bundle holds
 * one squashed commit, which is what llama-bench built from it reports.
 */
export function llamaCppBuild(): { release: string; commit: string; buildNumber: number } {
  const dir = nodeLlamaCppDir();
  const release = llamaCppRelease();
  let commit = "unknown";
  try {
    const handle = fs.openSync(path.join(dir ?? "", "llama", "gitRelease.bundle"), "r");
    const head = Buffer.alloc(512);
    fs.readSync(handle, head, 0, 512, 0);
    fs.closeSync(handle);
    const match = /^([0-9a-f]{40}) HEAD$/m.exec(head.toString("latin1"));
    if (match) commit = match[1]!.slice(0, 7);
  } catch {
    // keep "unknown"
  }
  return { release, commit, buildNumber: 1 };
}
