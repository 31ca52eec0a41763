// Preloaded with `node --import`: records every module specifier resolved, into $LMRUN_TRACE_IMPORTS.
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`
import fs from "node:fs";
export async function resolve(specifier, context, next) {
  if (process.env.LMRUN_TRACE_IMPORTS) fs.appendFileSync(process.env.LMRUN_TRACE_IMPORTS, specifier + "\\n");
  return next(specifier, context);
}`),
);
