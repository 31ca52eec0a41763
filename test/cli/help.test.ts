import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import type { CommandContext } from "../../src/cli/context.js";
import { commandPath } from "../../src/cli/examples.js";
import { buildProgram } from "../../src/cli/program.js";
import { programFor } from "../../src/cli/programFor.js";

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

function helpOf(command: Command): string {
  let text = "";
  command.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
  command.outputHelp();
  return text;
}

describe("every command's help", () => {
  // Built from the real command tree, so a command added later is checked too (src/cli/examples.ts).
  const program = buildProgram({} as CommandContext);
  it.each(allCommands(program).map((c) => [commandPath(c) || "lmrun", c] as const))("%s ends with two or three examples", (path, command) => {
    const help = helpOf(command);
    const match = /\nExamples:\n((?: {2}\$ .+\n)+)$/.exec(help);
    expect(match, `no examples at the end of ${path} --help`).not.toBeNull();
    const examples = match![1]!.trimEnd().split("\n");
    expect(examples.length).toBeGreaterThanOrEqual(2);
    expect(examples.length).toBeLessThanOrEqual(3);
    for (const example of examples) expect(example).toContain(path === "lmrun" ? "lmrun " : `lmrun ${path}`);
    expect(help.match(/Examples:/g)).toHaveLength(1);
  });
});

describe("a call that names a command loads that command alone", () => {
  const program = buildProgram({} as CommandContext);
  const named = program.commands.filter((c) => c.name() !== "completion");
  it.each(named.flatMap((c) => [c.name(), ...c.aliases()].map((name) => [name, c] as const)))("%s: the same command, options and help", async (name, full) => {
    const alone = await programFor({} as CommandContext, [name, "--help"]);
    expect(alone.commands.map((c) => c.name())).toEqual([full.name()]);
    expect(helpOf(alone.commands[0]!)).toBe(helpOf(full));
  });

  it("help, completion and an unknown name get every command (suggestions, completion lists)", async () => {
    for (const argv of [[], ["--help"], ["completion", "bash"], ["rnu"]]) {
      expect((await programFor({} as CommandContext, argv)).commands.length).toBe(program.commands.length);
    }
  });
});
