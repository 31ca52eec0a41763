import fs from "node:fs/promises";
import { canonicalRef, loadCatalogue } from "../../models/catalogue.js";
import { BUNDLED_NAMES } from "../../models/ref.js";
import { openStore } from "../../models/resolve.js";

/**
 * What a shell completes as a model: the bundled names, the catalogue's names (with their tags and
 * aliases) and every reference in the store's manifest. Read only, nothing repaired or loaded; any
 * part that cannot be read is left out (a completion must never print an error).
 */
export async function completionModelNames(env: NodeJS.ProcessEnv): Promise<string[]> {
  const names = new Set<string>(BUNDLED_NAMES);
  try {
    for (const model of loadCatalogue().models) {
      names.add(canonicalRef(model));
      for (const alias of model.aliases) names.add(alias.toLowerCase());
    }
  } catch {
    // an unreadable catalogue: complete the rest
  }
  try {
    const store = await openStore(env);
    const manifest = JSON.parse(await fs.readFile(store.manifestPath, "utf8")) as { files?: { refs?: unknown }[] };
    for (const entry of manifest.files ?? []) {
      for (const ref of Array.isArray(entry.refs) ? entry.refs : []) if (typeof ref === "string") names.add(ref);
    }
  } catch {
    // no store yet, or an unreadable manifest
  }
  return [...names].sort();
}
