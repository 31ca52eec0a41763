import { describe, expect, it } from "vitest";
import { formatError, LmrunError } from "../../src/errors.js";

describe("formatError", () => {
  it("joins message and hint with one full stop, never two", () => {
    expect(formatError(new LmrunError("no such model", { hint: "Check the name" }))).toBe("no such model. Check the name");
    expect(formatError(new LmrunError('unknown model "hell".', { hint: "Did you mean hello?" }))).toBe('unknown model "hell". Did you mean hello?');
    expect(formatError(new LmrunError("plain"))).toBe("plain");
  });
});
