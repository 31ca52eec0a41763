import fs from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { nodeLlamaCppVersion } from "./binding.js";

/**
 * node-llama-cpp's exports, plus the two lock helpers of its own copy of lifecycle-utils (the serve
 * scheduler asks whether the context's lock is held: module state of that very copy).
 */
export type NodeLlamaCpp = typeof import("node-llama-cpp") & {
  isLockActive(scope: readonly unknown[]): boolean;
  waitForLockRelease(scope: readonly unknown[]): Promise<void>;
};

const bundleUrl = new URL("../vendor/node-llama-cpp.js", import.meta.url);
const bundleMetaUrl = new URL("../vendor/node-llama-cpp.json", import.meta.url);

let loading: Promise<NodeLlamaCpp> | undefined;
let loadedFrom: "bundle" | "package" | undefined;

/**
 * The one way engine code loads node-llama-cpp. Prefers the single-file bundle that the build makes of
 * the installed version (scripts/bundle-node-llama-cpp.mjs: ~0.15 s to load against ~0.4 s for the
 * package's 400 modules); the package itself when there is no bundle, the bundle is of another version,
 * or LMRUN_NODE_LLAMA_CPP_BUNDLE=0.
 */
export function loadNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  loading ??= importNodeLlamaCpp();
  return loading;
}

/** Which copy this process loaded (undefined before the first load). */
export function nodeLlamaCppLoadedFrom(): "bundle" | "package" | undefined {
  return loadedFrom;
}

/** Whether the bundle is present and of the installed node-llama-cpp version. */
export function usableBundle(env: NodeJS.ProcessEnv = process.env, installedVersion: string = nodeLlamaCppVersion()): boolean {
  if (env.LMRUN_NODE_LLAMA_CPP_BUNDLE === "0") return false;
  try {
    const meta = JSON.parse(fs.readFileSync(fileURLToPath(bundleMetaUrl), "utf8")) as { nodeLlamaCppVersion?: string };
    return meta.nodeLlamaCppVersion === installedVersion && fs.existsSync(fileURLToPath(bundleUrl));
  } catch {
    return false;
  }
}

async function importNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  if (usableBundle()) {
    try {
      const bundle = (await import(bundleUrl.href)) as NodeLlamaCpp;
      loadedFrom = "bundle";
      return bundle;
    } catch {
      // A bundle that does not load (a packaging slip) must not stop lmrun: the package does the same.
    }
  }
  const nodeLlamaCpp = await import("node-llama-cpp");
  const fromNodeLlamaCpp = createRequire(createRequire(import.meta.url).resolve("node-llama-cpp"));
  const locks = (await import(pathToFileURL(fromNodeLlamaCpp.resolve("lifecycle-utils")).href)) as Pick<NodeLlamaCpp, "isLockActive" | "waitForLockRelease">;
  loadedFrom = "package";
  return { ...nodeLlamaCpp, isLockActive: locks.isLockActive, waitForLockRelease: locks.waitForLockRelease };
}
