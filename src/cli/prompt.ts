import { UsageError } from "../errors.js";
import { readInputText } from "../io/inputFile.js";
import { checkGrammarSchema, SchemaProblem } from "./jsonSchema.js";

/**
 * The argument is the instruction and piped stdin the material, joined as lms does
 * (`instruction\n\nmaterial`). Either alone is the prompt; both empty is a usage error.
 */
export function assemblePrompt(args: string[], piped: string | undefined, options: { terminal?: boolean } = {}): string {
  const instruction = args.join(" ").trim();
  const material = (piped ?? "").replace(/\s+$/, "");
  if (instruction === "" && material.trim() === "") {
    throw new UsageError(
      "no prompt: give one as arguments or pipe it on stdin",
      options.terminal
        ? 'For a conversation, use `lmrun chat MODEL`; for one reply: lmrun run tiny "Once upon a time"'
        : 'Example: lmrun run tiny "Once upon a time" or echo "..." | lmrun run tiny',
    );
  }
  if (instruction === "") return material;
  if (material.trim() === "") return instruction;
  return `${instruction}\n\n${material}`;
}

export async function readJsonSchemaFile(file: string): Promise<object> {
  const text = await readInputText(file, { what: "JSON schema file", flag: "--json-schema" });
  let value: unknown;
  try {
    value = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("the top level must be an object");
  } catch (error) {
    throw new UsageError(`${file} is not a valid JSON schema: ${(error as Error).message}`);
  }
  try {
    checkGrammarSchema(value);
  } catch (error) {
    if (!(error instanceof SchemaProblem)) throw error;
    throw new UsageError(
      `--json-schema ${file}: ${error.message}`,
      "The grammar enforces type, properties, required, additionalProperties, items, prefixItems, min/maxItems, min/maxLength, min/maxProperties, format (date, time, date-time), enum, const, oneOf and $defs/$ref",
    );
  }
  return value as object;
}
