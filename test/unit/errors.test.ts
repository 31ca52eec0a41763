import { describe, expect, it } from "vitest";
import { formatError, LmrunError } from "../../src/errors.js";

describe("formatError", () => {
  it("joins message and hint with one full stop, never two", () => {
    expect(formatError(new LmrunError("no such model", { hint: "Check the name" }))).toBe("no such model. Check the name");
    expect(formatError(new LmrunError('unknown model "hell".', { hint: "Did you mean hello?" }))).toBe('unknown model "hell". Did you mean hello?');
    expect(formatError(new LmrunError("plain"))).toBe("plain");
  });

  it("is one line: control characters a message quotes are escaped", () => {
    expect(formatError(new Error('Expected "GGUF" but got "vm\n\u0000"'))).toBe('Expected "GGUF" but got "vm\\n\\u0000"');
    expect(formatError(new LmrunError("a\tb", { hint: "c\r\nd" }))).toBe("a\\tb. c\\r\\nd");
  });
});
