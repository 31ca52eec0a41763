import { describe, expect, it } from "vitest";
import { complete } from "../../src/tui/completion.js";
import { commonPrefix, findCommand, isSlashCommand, matchingCommands, parseSetting, parseSlash, SLASH_COMMANDS } from "../../src/tui/slash.js";

describe("slash registry", () => {
  it("has every command the issue asks for, each with help", () => {
    const names = SLASH_COMMANDS.map((c) => c.name);
    for (const name of ["help", "clear", "system", "set", "model", "regen", "read", "save", "load", "stats", "exit"]) {
      expect(names).toContain(name);
    }
    for (const c of SLASH_COMMANDS) expect(c.help.length).toBeGreaterThan(5);
    const all = SLASH_COMMANDS.flatMap((c) => [c.name, ...c.aliases]);
    expect(new Set(all).size).toBe(all.length);
  });

  it("parses commands and finds them by alias", () => {
    expect(parseSlash("/system  You are terse.")).toEqual({ name: "system", args: "You are terse." });
    expect(findCommand("quit")?.name).toBe("exit");
    expect(findCommand("?")?.name).toBe("help");
    expect(findCommand("nope")).toBeUndefined();
    expect(isSlashCommand("/save x.md")).toBe(true);
    expect(isSlashCommand("a/b")).toBe(false);
    expect(isSlashCommand("/usr/bin is a path\nsecond line")).toBe(false);
  });

  it("validates /set values", () => {
    expect(parseSetting("temp 0.2")).toEqual({ patch: { temperature: 0.2 }, label: "temp 0.2" });
    expect(parseSetting("top-k 5")).toEqual({ patch: { topK: 5 }, label: "top-k 5" });
    expect(parseSetting("max_tokens 64")).toEqual({ patch: { maxTokens: 64 }, label: "max-tokens 64" });
    expect(parseSetting("seed random")).toEqual({ patch: { seed: undefined }, label: "seed random" });
    expect(parseSetting("top-p 2")).toEqual({ error: "top-p must be between 0 and 1, got 2" });
    expect(parseSetting("top-k 1.5")).toEqual({ error: 'top-k must be a whole number, got "1.5"' });
    expect("error" in parseSetting("colour red")).toBe(true);
    expect("error" in parseSetting("temp")).toBe(true);
  });

  it("completes command names and file arguments", () => {
    expect(matchingCommands("/s").map((c) => c.name)).toEqual(["system", "set", "save", "stats"]);
    expect(complete("/reg")).toEqual({ text: "/regen ", candidates: ["regen"] });
    expect(complete("/st").text).toBe("/stats ");
    expect(commonPrefix(["save", "set", "system"])).toBe("s");
    const listDir = (dir: string) =>
      dir === "notes"
        ? [{ name: "today.md", isDir: false }, { name: "todo.txt", isDir: false }, { name: ".hidden", isDir: false }]
        : [{ name: "notes", isDir: true }];
    expect(complete("/read no", listDir)).toEqual({ text: "/read notes/", candidates: ["notes/"] });
    expect(complete("/read notes/to", listDir)).toEqual({ text: "/read notes/tod", candidates: ["today.md", "todo.txt"] });
    expect(complete("/clear x", listDir)).toEqual({ text: "/clear x", candidates: [] });
  });
});
