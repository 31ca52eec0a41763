import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import type { CommandContext } from "../../src/cli/context.js";
import { commandPath } from "../../src/cli/examples.js";
import { delegatesRpc } from "../../src/cli/modelOptions.js";
import { buildProgram } from "../../src/cli/program.js";

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

/** What a command would see as its flags: commander's parse result, without running anything. */
function withFlags(command: Command, flags: Record<string, unknown>): Command {
  for (const [key, value] of Object.entries(flags)) command.setOptionValue(key, value);
  return command;
}

describe("--rpc runs the model in a child process (one hook for every command)", () => {
  // Built from the real command tree: a model command added later with --rpc is checked too.
  const commands = allCommands(buildProgram({} as CommandContext));
  const byPath = new Map(commands.map((c) => [commandPath(c), c]));

  it("every command whose --rpc takes workers delegates, except serve (it supervises its own child) and info (it loads no model)", () => {
    const withWorkers = commands.filter((c) => c.options.some((o) => o.long === "--rpc" && o.required)).map(commandPath);
    const delegating = commands.filter(delegatesRpc).map(commandPath);
    expect(delegating.sort()).toEqual(["batch", "bench", "chat", "eval gen", "eval hellaswag", "eval mc", "eval winogrande", "perplexity", "run"]);
    expect(withWorkers.filter((p) => !delegating.includes(p)).sort()).toEqual(["info", "serve"]);
  });

  it("not for flags that load no model: chat --sessions, eval gen --score-only", () => {
    expect(delegatesRpc(withFlags(byPath.get("chat")!, { sessions: true }))).toBe(false);
    expect(delegatesRpc(withFlags(byPath.get("eval gen")!, { scoreOnly: "answers.jsonl" }))).toBe(false);
  });
});
