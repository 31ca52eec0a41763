import type { Command } from "commander";
import type { TaskKind } from "../../eval/tasks/datasets.js";
import type { CommandContext } from "../context.js";
import { addLoadOptions, addSamplingOptions } from "../modelOptions.js";
import { collect, parseInteger } from "../parse.js";

/** `lmrun eval`: task scores as llama-perplexity computes them, and generation metrics. */

const TASKS: Array<{ kind: TaskKind; name: string; description: string; file: string; tasksHelp: string }> = [
  {
    kind: "hellaswag",
    name: "hellaswag",
    description: "HellaSwag acc_norm as llama-perplexity --hellaswag (its table, Wilson 95% interval)",
    file: "hellaswag_val_full.txt: 6 lines per task (context, gold index, 4 endings)",
    tasksHelp: "tasks to score, drawn in llama-perplexity's shuffled order (default 400, as --hellaswag-tasks)",
  },
  {
    kind: "winogrande",
    name: "winogrande",
    description: "Winogrande accuracy as llama-perplexity --winogrande",
    file: "CSV lines index,sentence with _,option1,option2,answer",
    tasksHelp: "score a random subset of n tasks, the one llama-perplexity's --winogrande-tasks picks (default: all, in order)",
  },
  {
    kind: "mc",
    name: "mc",
    description: "multiple-choice accuracy (MMLU, ARC, TruthfulQA) as llama-perplexity --multiple-choice",
    file: "llama.cpp's binary multiple-choice file (e.g. mmlu-validation.bin)",
    tasksHelp: "score a random subset of n tasks, the one llama-perplexity's --multiple-choice-tasks picks (default: all, in order)",
  },
];

export function registerEval(program: Command, ctx: CommandContext): void {
  const evalCommand = program.command("eval").description("benchmark scores: HellaSwag, Winogrande, multiple choice (as llama-perplexity), and generation metrics");
  for (const t of TASKS) {
    const command = evalCommand
      .command(t.name)
      .description(t.description)
      .argument("<model>", "a .gguf path or catalogue name")
      .option("-f, --file <file>", t.file)
      .option("--tasks <n>", t.tasksHelp, parseInteger(1))
      .option("--parallel <n>", "tasks scored at once, each on one context sequence per choice (default 1)", parseInteger(1, 256))
      .option("--base <model>", "also score this model on the same tasks and report the difference with its 95% interval")
      .option("--json", "print one JSON object");
    addLoadOptions(command);
    const ctxOption = command.options.find((o) => o.long === "--ctx");
    if (ctxOption) ctxOption.description = "llama-perplexity's -c (default 512): a task may need up to 4 x c tokens";
    const threadsOption = command.options.find((o) => o.long === "--threads");
    if (threadsOption) threadsOption.description = "CPU threads (default: all cores, as llama-perplexity)";
    command.action(async (model: string, flags) => {
      const { evalTasksCommand } = await import("../actions/evalTasks.js");
      await evalTasksCommand(ctx, t.kind, model, flags);
    });
  }
  const gen = evalCommand
    .command("gen")
    .description("generate answers to a JSONL of tasks and score them: exact match, BLEU and chrF (as sacrebleu), ROUGE-1/2/L (as rouge-score)")
    .argument("[model]", "a .gguf path or catalogue name (none with --score-only)")
    .option("-f, --file <file>", 'tasks, one JSON object per line: {"id", "prompt" | "messages", "reference" | "references"}')
    .option("--score-only <answers>", 'score answers made elsewhere: lines {"id", "answer", "reference" | "references"} (references may come from -f)')
    .option("--metrics <list>", "comma-separated: em, bleu, chrf, rouge1, rouge2, rougeL, rouge (default: all)")
    .option("--rouge-stemmer", "ROUGE with the Porter stemmer (rouge-score's use_stemmer=True; default off, as rouge-score)")
    .option("--parallel <n>", "tasks answered at once, one context sequence each (default 4)", parseInteger(1, 256))
    .option("--raw", "plain text completion: no chat template")
    .option("--stop <text>", "stop an answer when this text is generated (repeatable)", collect)
    .option("--answers <file>", "also write the answers as JSONL (for --score-only later)")
    .option("--base <model>", "also answer with this model and report the difference with its 95% interval")
    .option("--json", "print one JSON object");
  // --score-only loads no model, so it never runs as the RPC child.
  addSamplingOptions(addLoadOptions(gen, { inProcess: (flags) => flags.scoreOnly !== undefined }));
  const maxTokens = gen.options.find((o) => o.long === "--max-tokens");
  if (maxTokens) maxTokens.description = "maximum tokens per answer (default 128)";
  const temp = gen.options.find((o) => o.long === "--temp");
  if (temp) temp.description = "temperature (default 0: greedy, deterministic)";
  gen.action(async (model: string | undefined, flags) => {
    const { evalGenCommand } = await import("../actions/evalGen.js");
    await evalGenCommand(ctx, model, flags);
  });
}
