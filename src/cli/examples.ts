import type { Command } from "commander";

/**
 * The examples that end each command's --help, keyed by command path ("" is `lmrun` itself,
 * "config set" a subcommand). Taken from the README; two or three per command. A new command needs
 * one line here (test/cli/help.test.ts fails for a command without examples).
 */
export const COMMAND_EXAMPLES: Record<string, string[]> = {
  "": ['lmrun run tiny "Once upon a time"', "lmrun pull qwen2.5:0.5b && lmrun chat qwen2.5:0.5b", "lmrun bench model.gguf -t 1,2"],
  run: ['lmrun run tiny "Once upon a time"', 'cat report.txt | lmrun run qwen2.5:0.5b "Summarise this in one line:"', 'lmrun run model.gguf "Hello" --temp 0 --json | jq .timings'],
  chat: ["lmrun chat", 'lmrun chat qwen2.5:0.5b --system "Be brief." --temp 0.2', "lmrun chat --resume"],
  pull: ["lmrun pull qwen2.5:0.5b", "lmrun pull llama3.2:1b@Q8_0", "lmrun pull hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"],
  ls: ["lmrun ls", "lmrun ls --json | jq '.models[].name'"],
  rm: ["lmrun rm qwen2.5:0.5b", "lmrun rm hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf"],
  show: ["lmrun show qwen2.5:0.5b", "lmrun show model.gguf --json"],
  verify: ["lmrun verify", "lmrun verify qwen2.5:0.5b"],
  config: ["lmrun config list", "lmrun config set modelsDir /big/disk/models", "lmrun config get threads --json"],
  "config list": ["lmrun config list", "lmrun config list --json"],
  "config get": ["lmrun config get modelsDir", "lmrun config get threads --json"],
  "config set": ["lmrun config set modelsDir /big/disk/models", "lmrun config set temperature 0.2"],
  "config unset": ["lmrun config unset threads", "lmrun config unset defaultModel"],
  "config path": ["lmrun config path", '"$EDITOR" "$(lmrun config path)"'],
  bench: ["lmrun bench model.gguf", "lmrun bench q4.gguf q8.gguf -t 1,2 -p 128-512*2 --plot sweep.svg", "lmrun bench model.gguf --compare before.json --plot compare.png"],
  info: ["lmrun info", "lmrun info --json"],
  perplexity: [
    "lmrun perplexity model.gguf -f wiki.test.raw --plot ppl.svg",
    "lmrun perplexity model-Q4_0.gguf --base model-F16.gguf -f wiki.test.raw --chunks 100 --plot kld.svg",
  ],
  eval: ["lmrun eval hellaswag model.gguf -f hellaswag_val_full.txt", "lmrun eval gen model.gguf -f tasks.jsonl --answers answers.jsonl"],
  "eval hellaswag": ["lmrun eval hellaswag model.gguf -f hellaswag_val_full.txt", "lmrun eval hellaswag model-Q4_0.gguf --base model-F16.gguf -f hellaswag_val_full.txt"],
  "eval winogrande": ["lmrun eval winogrande model.gguf -f winogrande-debiased-eval.csv", "lmrun eval winogrande model.gguf -f winogrande-debiased-eval.csv --tasks 500 --json"],
  "eval mc": ["lmrun eval mc model.gguf -f mmlu-validation.bin --tasks 500", "lmrun eval mc model-Q4_0.gguf --base model-F16.gguf -f arc-challenge-validation.bin"],
  "eval gen": ["lmrun eval gen model.gguf -f tasks.jsonl --answers answers.jsonl", "lmrun eval gen --score-only answers.jsonl --metrics bleu,chrf"],
  engine: ["lmrun engine build --rpc", "lmrun engine ls", "lmrun engine rm cpu-rpc-llama.cpp-v0.5.0-nlc-3.22.1"],
  "engine build": ["lmrun engine build --rpc", "lmrun engine build --gpu cuda"],
  "engine ls": ["lmrun engine ls", "lmrun engine ls --json"],
  "engine rm": ["lmrun engine rm cpu-rpc-llama.cpp-v0.5.0-nlc-3.22.1", "lmrun engine rm cpu-rpc-llama.cpp-v0.5.0-nlc-3.22.1 --json"],
  "rpc-server": ["lmrun rpc-server                      # 127.0.0.1:50052", "lmrun rpc-server --port 50053 --threads 2 --cache"],
  serve: ["lmrun serve tiny                        # 127.0.0.1:11488, OpenAI and ollama APIs", "lmrun serve qwen2.5:7b --keep-alive 30m --rpc 10.0.0.2:50052,10.0.0.3:50052", "LMRUN_API_KEY=$(openssl rand -hex 24) lmrun serve --host 0.0.0.0"],
  ps: ["lmrun ps", "lmrun ps --json"],
  stop: ["lmrun stop qwen2.5:0.5b", "lmrun stop tiny --server http://127.0.0.1:11488"],
  batch: ["lmrun batch tiny prompts.jsonl > answers.jsonl", "lmrun batch qwen2.5:0.5b prompts.jsonl -o answers.jsonl --resume --parallel 4"],
  completion: ["source <(lmrun completion bash)     # in ~/.bashrc", "source <(lmrun completion zsh)      # in ~/.zshrc", "lmrun completion fish > ~/.config/fish/completions/lmrun.fish"],
};

/** The path of a command below the root: "config set". */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Ends every command's help (the root's included) with its examples. */
export function addExamples(root: Command): void {
  const visit = (command: Command): void => {
    const examples = COMMAND_EXAMPLES[commandPath(command)];
    if (examples !== undefined && examples.length > 0) {
      command.addHelpText("after", `\nExamples:\n${examples.map((e) => `  $ ${e}`).join("\n")}`);
    }
    command.commands.forEach(visit);
  };
  visit(root);
}
