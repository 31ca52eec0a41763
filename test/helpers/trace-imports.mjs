// Preloaded with `node --import`: records every module specifier resolved, into $LMRUN_TRACE_IMPORTS.
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`
import fs from "node:fs";
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (process.env.LMRUN_TRACE_IMPORTS) {
    // lmrun's one-file bundle of node-llama-cpp (dist/vendor) counts as node-llama-cpp itself.
    const bundle = /\\/vendor\\/node-llama-cpp\\.js$/.test(resolved.url) ? "node-llama-cpp\\n" : "";
    fs.appendFileSync(process.env.LMRUN_TRACE_IMPORTS, specifier + "\\n" + bundle);
  }
  return resolved;
}`),
);
