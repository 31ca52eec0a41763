import { describe, expect, it } from "vitest";
import { ForcedCallStream, forcedCallSchema, parseForcedCalls } from "../../src/engine/toolChoice.js";

const weather = { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } };
const time = { name: "get_time" };

describe("forced tool calls (tool_choice required / named)", () => {
  it("auto or no choice leaves the model free: no schema, nothing parsed", () => {
    expect(forcedCallSchema([weather], undefined)).toBeUndefined();
    expect(forcedCallSchema([weather], "auto")).toBeUndefined();
    expect(parseForcedCalls('{"city":"Paris"}', "auto")).toBeUndefined();
  });

  it("a named function: its parameters are the schema, the answer is its arguments", () => {
    expect(forcedCallSchema([weather, time], { kind: "function", name: "get_weather" })).toBe(weather.parameters);
    expect(forcedCallSchema([weather, time], { kind: "function", name: "get_time" })).toEqual({ type: "object", properties: {} });
    expect(() => forcedCallSchema([weather], { kind: "function", name: "nope" })).toThrow(/not among the tools/);
    expect(parseForcedCalls('{ "city": "Paris" }', { kind: "function", name: "get_weather" })).toEqual([{ name: "get_weather", arguments: { city: "Paris" }, argumentsText: '{ "city": "Paris" }' }]);
  });

  it("required: one call naming one of the tools, or a non-empty list of them when parallel", () => {
    const single = forcedCallSchema([weather, time], { kind: "required", parallel: false });
    expect(single).toEqual({
      oneOf: [
        { type: "object", properties: { name: { const: "get_weather" }, arguments: weather.parameters } },
        { type: "object", properties: { name: { const: "get_time" }, arguments: { type: "object", properties: {} } } },
      ],
    });
    expect(forcedCallSchema([weather], { kind: "required", parallel: true })).toEqual({
      type: "array",
      items: { type: "object", properties: { name: { const: "get_weather" }, arguments: weather.parameters } },
      minItems: 1,
    });
    const required = { kind: "required", parallel: true } as const;
    expect(parseForcedCalls('{"name":"get_time","arguments":{}}', required)).toEqual([{ name: "get_time", arguments: {} }]);
    expect(parseForcedCalls('[{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":{"city":"Oslo"}}]', required)).toEqual([
      { name: "get_time", arguments: {} },
      { name: "get_weather", arguments: { city: "Oslo" } },
    ]);
  });

  it("cut short (max tokens): a call keeps its arguments as far as they were written, as OpenAI's does; required keeps the calls it named", () => {
    const required = { kind: "required", parallel: true } as const;
    expect(parseForcedCalls('[{"name":"get_time","argu', required)).toEqual([{ name: "get_time", arguments: undefined, argumentsText: "" }]);
    expect(parseForcedCalls('[{"name":"a","arguments":{"x":1}}, {"name":"b","arguments":{"y":', required)).toEqual([
      { name: "a", arguments: undefined, argumentsText: '{"x":1}' },
      { name: "b", arguments: undefined, argumentsText: '{"y":' },
    ]);
    expect(parseForcedCalls('[{"na', required)).toBeUndefined();
    expect(parseForcedCalls('{"city":"Par', { kind: "function", name: "get_weather" })).toEqual([{ name: "get_weather", arguments: undefined, argumentsText: '{"city":"Par' }]);
    expect(parseForcedCalls("", { kind: "function", name: "get_weather" })).toBeUndefined();
    expect(parseForcedCalls("[]", { kind: "required", parallel: true })).toBeUndefined();
  });
});

describe("a required forced answer read as it is generated (ForcedCallStream)", () => {
  /** The pieces for a text fed in the given chunks, joined per call as a client assembles them. */
  const assemble = (chunks: string[]) => {
    const stream = new ForcedCallStream();
    const calls: Array<{ name?: string; arguments: string }> = [];
    const order: string[] = [];
    for (const chunk of chunks) {
      for (const piece of stream.push(chunk)) {
        calls[piece.index] ??= { arguments: "" };
        if ("name" in piece) {
          calls[piece.index]!.name = piece.name;
          order.push(`name ${piece.index}`);
        } else {
          calls[piece.index]!.arguments += piece.arguments;
          order.push(`args ${piece.index}`);
        }
      }
    }
    return { calls, order };
  };
  const splits = (text: string) => [
    [text],
    [...text],
    // Pieces of 3 and of 7 characters: boundaries inside strings, escapes and keys.
    text.match(/[\s\S]{1,3}/g)!,
    text.match(/[\s\S]{1,7}/g)!,
  ];

  it("gives each call's name, then its arguments as written, however the text is cut", () => {
    const one = '{"name": "get_weather", "arguments": {"city": "Paris \\"Ville\\" {x}", "days": [1, 2]}}';
    const many = '[{"name":"a","arguments":{}} , {"name": "b\\u00e9", "arguments": {"q": {"deep": "]"}}}]';
    for (const chunks of splits(one)) {
      const { calls, order } = assemble(chunks);
      expect(calls).toEqual([{ name: "get_weather", arguments: '{"city": "Paris \\"Ville\\" {x}", "days": [1, 2]}' }]);
      expect(order[0]).toBe("name 0");
    }
    for (const chunks of splits(many)) {
      const { calls } = assemble(chunks);
      expect(calls).toEqual([
        { name: "a", arguments: "{}" },
        { name: "bé", arguments: '{"q": {"deep": "]"}}' },
      ]);
      // Each piece, joined, is what parseForcedCalls reads from the whole text.
      expect(calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) }))).toEqual(parseForcedCalls(many, { kind: "required", parallel: true }));
    }
  });

  it("streams the arguments of a call cut short as far as they go, and a plain value as a value", () => {
    expect(assemble(['{"name": "f", "arguments": {"text": "unfinis']).calls).toEqual([{ name: "f", arguments: '{"text": "unfinis' }]);
    expect(assemble(['{"name": "f", "arguments": 42}']).calls).toEqual([{ name: "f", arguments: "42" }]);
    expect(assemble(["not json at all"]).calls).toEqual([]);
  });
});
