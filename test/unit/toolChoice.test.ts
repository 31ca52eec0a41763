import { describe, expect, it } from "vitest";
import { forcedCallSchema, parseForcedCalls } from "../../src/engine/toolChoice.js";

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

  it("cut short (max tokens): a named call keeps its partial arguments, as OpenAI's does; a required answer is no call", () => {
    expect(parseForcedCalls('[{"name":"get_time","argu', { kind: "required", parallel: true })).toBeUndefined();
    expect(parseForcedCalls('{"city":"Par', { kind: "function", name: "get_weather" })).toEqual([{ name: "get_weather", arguments: undefined, argumentsText: '{"city":"Par' }]);
    expect(parseForcedCalls("", { kind: "function", name: "get_weather" })).toBeUndefined();
    expect(parseForcedCalls("[]", { kind: "required", parallel: true })).toBeUndefined();
  });
});
