/**
 * What node-llama-cpp's JSON-schema grammar can enforce (its GbnfJsonSchema type), checked before a
 * schema reaches it: anything else was silently ignored (`pattern`) or made nonsense (`{"type": "foo"}`
 * generated `null` and exit 0). Annotations that constrain nothing are allowed.
 */
const SCALAR_TYPES = ["string", "number", "integer", "boolean", "null"];
const TYPES = [...SCALAR_TYPES, "object", "array"];
const ANNOTATIONS = ["description", "title", "$schema", "$id", "$comment", "examples", "default", "$defs"];
const BY_TYPE: Record<string, string[]> = {
  string: ["minLength", "maxLength", "format"],
  object: ["properties", "additionalProperties", "minProperties", "maxProperties", "required"],
  array: ["items", "prefixItems", "minItems", "maxItems"],
};
const STRING_FORMATS = ["date-time", "time", "date"];

export class SchemaProblem extends Error {}

/** Throws a SchemaProblem naming the first keyword or value the grammar cannot enforce, and where it is. */
export function checkGrammarSchema(schema: unknown, where = ""): void {
  const at = where === "" ? "at the top level" : `at ${where}`;
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw new SchemaProblem(`${at}: a schema must be an object`);
  const node = schema as Record<string, unknown>;
  const kind = node.const !== undefined ? "const" : node.enum !== undefined ? "enum" : node.oneOf !== undefined ? "oneOf" : node.$ref !== undefined ? "$ref" : "type";
  const types = kind === "type" ? checkType(node.type, at) : [];
  const allowed = new Set([...ANNOTATIONS, kind, ...types.flatMap((t) => BY_TYPE[t] ?? [])]);
  for (const key of Object.keys(node)) {
    if (!allowed.has(key)) {
      const owner = Object.entries(BY_TYPE).find(([, keys]) => keys.includes(key))?.[0];
      const why = owner === undefined ? "" : kind === "type" ? ` (it belongs to type ${owner}, not ${types.join("/")})` : ` (not together with ${kind})`;
      throw new SchemaProblem(`"${key}" ${at} cannot be enforced by the grammar${why}`);
    }
  }
  if (kind === "enum" && !Array.isArray(node.enum)) throw new SchemaProblem(`${at}: enum must be a list`);
  if (kind === "oneOf") {
    if (!Array.isArray(node.oneOf)) throw new SchemaProblem(`${at}: oneOf must be a list of schemas`);
    node.oneOf.forEach((s, i) => checkGrammarSchema(s, `${where}/oneOf/${i}`));
  }
  if (kind === "$ref" && (typeof node.$ref !== "string" || !node.$ref.startsWith("#/$defs/"))) {
    throw new SchemaProblem(`${at}: $ref must point into $defs ("#/$defs/NAME"), got ${JSON.stringify(node.$ref)}`);
  }
  if (node.format !== undefined && !STRING_FORMATS.includes(node.format as string)) {
    throw new SchemaProblem(`${at}: format ${JSON.stringify(node.format)} cannot be enforced (only ${STRING_FORMATS.join(", ")})`);
  }
  if (node.properties !== undefined) {
    if (typeof node.properties !== "object" || node.properties === null) throw new SchemaProblem(`${at}: properties must be an object`);
    for (const [name, s] of Object.entries(node.properties)) checkGrammarSchema(s, `${where}/properties/${name}`);
  }
  if (typeof node.additionalProperties === "object" && node.additionalProperties !== null) checkGrammarSchema(node.additionalProperties, `${where}/additionalProperties`);
  if (node.items !== undefined) checkGrammarSchema(node.items, `${where}/items`);
  if (Array.isArray(node.prefixItems)) node.prefixItems.forEach((s, i) => checkGrammarSchema(s, `${where}/prefixItems/${i}`));
  if (typeof node.$defs === "object" && node.$defs !== null) {
    for (const [name, s] of Object.entries(node.$defs)) checkGrammarSchema(s, `${where}/$defs/${name}`);
  }
}

function checkType(type: unknown, at: string): string[] {
  if (type === undefined) throw new SchemaProblem(`${at}: no "type" (nor const, enum, oneOf or $ref), so the grammar has nothing to enforce`);
  const list = Array.isArray(type) ? type : [type];
  for (const t of list) {
    if (typeof t !== "string" || !TYPES.includes(t)) throw new SchemaProblem(`${at}: type ${JSON.stringify(t)} is not a JSON schema type (${TYPES.join(", ")})`);
  }
  if (Array.isArray(type) && type.some((t) => !SCALAR_TYPES.includes(t as string))) {
    throw new SchemaProblem(`${at}: a list of types may hold only ${SCALAR_TYPES.join(", ")} (use oneOf for objects and arrays)`);
  }
  return list as string[];
}
