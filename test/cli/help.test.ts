import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import type { CommandContext } from "../../src/cli/context.js";
import { commandPath } from "../../src/cli/examples.js";
import { buildProgram } from "../../src/cli/program.js";

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
