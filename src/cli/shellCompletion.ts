import type { Command, Option } from "commander";
import { SETTING_KEYS } from "../config/config.js";
import { GPU_CHOICES } from "../config/rules.js";

/**
 * Shell completion scripts derived from commander's command tree, so every registered command,
 * alias, flag and `.choices()` list is completed without being listed twice. Positional arguments
 * named model/models/refs complete model names, which the script asks `lmrun completion
 * --list-models` for at completion time (store and catalogue; node-llama-cpp is not loaded).
 */
export type Shell = "bash" | "zsh" | "fish";
export const SHELLS: readonly Shell[] = ["bash", "zsh", "fish"];

/** An argument with one of these names takes a model reference. */
const MODEL_ARGUMENTS = new Set(["model", "models", "refs", "ref"]);
/** Values of arguments and flags that a parse function checks rather than commander's `.choices()`. */
const ARGUMENT_WORDS: Record<string, readonly string[]> = { key: SETTING_KEYS };
const FLAG_WORDS: Record<string, readonly string[]> = { "--gpu": GPU_CHOICES };

interface FlagSpec {
  names: string[];
  short?: string;
  long?: string;
  takesValue: boolean;
  choices: string[];
  description: string;
}

interface CommandSpec {
  /** The names it answers to, the canonical one first. */
  names: string[];
  description: string;
  flags: FlagSpec[];
  subcommands: CommandSpec[];
  /** Which positional arguments (0-based) take a model; `variadicFrom` covers the rest from there. */
  modelPositions: number[];
  modelVariadicFrom?: number;
  /** Positional arguments with a fixed set of values (setting names). */
  positionalWords: { position: number; words: readonly string[] }[];
}

function flagSpec(option: Option): FlagSpec {
  const names = [option.short, option.long].filter((n): n is string => typeof n === "string");
  return {
    names,
    ...(option.short ? { short: option.short } : {}),
    ...(option.long ? { long: option.long } : {}),
    takesValue: option.required || option.optional,
    choices: option.argChoices ?? [...(FLAG_WORDS[option.long ?? ""] ?? [])],
    description: option.description,
  };
}

const HELP_FLAG: FlagSpec = { names: ["-h", "--help"], short: "-h", long: "--help", takesValue: false, choices: [], description: "display help" };

/** The part of the command tree completion needs; the root's flags are offered everywhere (they are global). */
export function describeCommand(command: Command, inherited: FlagSpec[] = []): CommandSpec {
  const own = command.options.filter((o) => !o.hidden).map(flagSpec);
  const flags = [...own, ...inherited, HELP_FLAG];
  const modelPositions: number[] = [];
  let modelVariadicFrom: number | undefined;
  const positionalWords: CommandSpec["positionalWords"] = [];
  command.registeredArguments.forEach((argument, index) => {
    const name = argument.name().toLowerCase();
    const words = argument.argChoices ?? ARGUMENT_WORDS[name];
    if (words !== undefined) positionalWords.push({ position: index, words });
    if (!MODEL_ARGUMENTS.has(name)) return;
    if (argument.variadic) modelVariadicFrom = index;
    else modelPositions.push(index);
  });
  const globals = inherited.length === 0 ? own.filter((f) => f.long !== "--version") : inherited;
  return {
    names: [command.name(), ...command.aliases()],
    description: command.description(),
    flags,
    subcommands: command.commands.filter((c) => !(c as Command & { _hidden?: boolean })._hidden).map((c) => describeCommand(c, globals)),
    modelPositions,
    positionalWords,
    ...(modelVariadicFrom !== undefined ? { modelVariadicFrom } : {}),
  };
}

export function completionScript(shell: Shell, program: Command): string {
  const spec = describeCommand(program);
  if (shell === "fish") return fishScript(spec);
  const bash = bashScript(spec);
  if (shell === "bash") return bash;
  // zsh runs the bash function through its bash-compatibility layer (COMP_LINE/COMP_POINT are set there too).
  return `#compdef ${spec.names[0]}\n# lmrun completion for zsh: add \`source <(lmrun completion zsh)\` to ~/.zshrc\n(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }\nautoload -U +X bashcompinit && bashcompinit\n${bash}`;
}

/** Every spelling of a command path (aliases included), as bash `case` patterns. */
function pathPatterns(prefixes: string[], spec: CommandSpec): string[] {
  return prefixes.flatMap((prefix) => spec.names.map((name) => (prefix === "" ? name : `${prefix} ${name}`)));
}

function bashScript(root: CommandSpec): string {
  const specCases: string[] = [];
  const choiceCases: string[] = [];
  const visit = (spec: CommandSpec, patterns: string[]): void => {
    const label = patterns.map((p) => `"${p}"`).join("|");
    const flags = spec.flags.flatMap((f) => f.names);
    const valueFlags = spec.flags.filter((f) => f.takesValue).flatMap((f) => f.names);
    const subcommands = spec.subcommands.flatMap((s) => s.names);
    const models = [...spec.modelPositions, ...(spec.modelVariadicFrom !== undefined ? [`${spec.modelVariadicFrom}+`] : [])];
    specCases.push(
      `    ${label}) subcommands="${subcommands.join(" ")}"; flags="${flags.join(" ")}"; value_flags=" ${valueFlags.join(" ")} "; models="${models.join(" ")}" ;;`,
    );
    for (const flag of spec.flags.filter((f) => f.choices.length > 0)) {
      const flagPatterns = patterns.flatMap((p) => flag.names.map((n) => `"${p} ${n}"`));
      choiceCases.push(`    ${flagPatterns.join("|")}) choices="${flag.choices.join(" ")}" ;;`);
    }
    for (const { position, words } of spec.positionalWords) {
      choiceCases.push(`    ${patterns.map((p) => `"${p} ${position}"`).join("|")}) choices="${words.join(" ")}" ;;`);
    }
    for (const sub of spec.subcommands) visit(sub, pathPatterns(patterns, sub));
  };
  visit(root, [""]);
  const name = root.names[0];
  return `# ${name} completion for bash: add \`source <(${name} completion bash)\` to ~/.bashrc
# Generated from lmrun's commands by \`${name} completion bash\`; model names come from \`${name} completion --list-models\`.
_${name}_spec() {
  subcommands=""; flags=""; value_flags=" "; models=""
  case "$1" in
${specCases.join("\n")}
  esac
}
_${name}_choices() {
  choices=""
  case "$1" in
${choiceCases.join("\n")}
  esac
}
_${name}() {
  # Words from the line itself: COMP_WORDS splits qwen2.5:0.5b at the colon.
  local line="\${COMP_LINE:0:COMP_POINT}" word path="" skip=0 position=0 i
  local -a words
  read -ra words <<<"$line"
  [[ -z "$line" || "$line" =~ [[:space:]]$ ]] && words+=("")
  local cur="\${words[\${#words[@]}-1]}" subcommands flags value_flags models choices
  _${name}_spec ""
  for ((i = 1; i < \${#words[@]} - 1; i++)); do
    word="\${words[i]}"
    if [[ $skip == 1 ]]; then skip=0; continue; fi
    case "$word" in
      --*=*) ;;
      -*) [[ "$value_flags" == *" $word "* ]] && skip=1 ;;
      *)
        if [[ $position == 0 && " $subcommands " == *" $word "* ]]; then
          path="\${path:+$path }$word"; _${name}_spec "$path"
        else
          position=$((position + 1))
        fi ;;
    esac
  done
  COMPREPLY=()
  if [[ $skip == 1 ]]; then
    # The value of a flag: its choices, else files (complete -o default).
    _${name}_choices "$path \${words[\${#words[@]}-2]}"
    [[ -n "$choices" ]] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ $position == 0 && -n "$subcommands" ]]; then
    COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
  else
    local m wants=0
    for m in $models; do
      if [[ "$m" == "$position" || ( "$m" == *+ && $position -ge \${m%+} ) ]]; then wants=1; fi
    done
    if [[ $wants == 1 ]]; then
      COMPREPLY=($(compgen -W "$("\${COMP_WORDS[0]:-${name}}" completion --list-models 2>/dev/null)" -- "$cur") $(compgen -f -X '!*.gguf' -- "$cur"))
    else
      _${name}_choices "$path $position"
      [[ -n "$choices" ]] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    fi
  fi
  # Readline replaces only what follows the last colon of the word (COMP_WORDBREAKS).
  if [[ "$cur" == *:* && "\${COMP_WORDBREAKS:-}" == *:* ]]; then
    local prefix="\${cur%"\${cur##*:}"}"
    for i in "\${!COMPREPLY[@]}"; do COMPREPLY[i]="\${COMPREPLY[i]#"$prefix"}"; done
  fi
}
complete -o default -F _${name} ${name}
`;
}

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function fishScript(root: CommandSpec): string {
  const name = root.names[0];
  const lines = [
    `# ${name} completion for fish: \`${name} completion fish > ~/.config/fish/completions/${name}.fish\``,
    `complete -c ${name} -f`,
  ];
  const flagLine = (condition: string, flag: FlagSpec): string => {
    const parts = [`complete -c ${name}`];
    if (condition) parts.push(`-n ${fishQuote(condition)}`);
    if (flag.short) parts.push(`-s ${flag.short.replace(/^-/, "")}`);
    if (flag.long) parts.push(`-l ${flag.long.replace(/^--/, "")}`);
    if (flag.choices.length > 0) parts.push(`-x -a ${fishQuote(flag.choices.join(" "))}`);
    else if (flag.takesValue) parts.push("-r -F");
    parts.push(`-d ${fishQuote(flag.description)}`);
    return parts.join(" ");
  };
  for (const flag of root.flags) lines.push(flagLine("", flag));
  const visit = (spec: CommandSpec, path: CommandSpec[]): void => {
    const seen = path.map((p) => `__fish_seen_subcommand_from ${p.names.join(" ")}`);
    const childNames = spec.subcommands.flatMap((s) => s.names);
    const here = path.length === 0 ? ["__fish_use_subcommand"] : [...seen, ...(childNames.length > 0 ? [`not __fish_seen_subcommand_from ${childNames.join(" ")}`] : [])];
    for (const sub of spec.subcommands) {
      lines.push(`complete -c ${name} -n ${fishQuote(here.join("; and "))} -a ${sub.names[0]} -d ${fishQuote(sub.description)}`);
    }
    if (path.length > 0) {
      const condition = seen.join("; and ");
      // The root's flags are global and already offered everywhere.
      for (const flag of spec.flags) if (!root.flags.some((g) => g.long === flag.long)) lines.push(flagLine(condition, flag));
      if (spec.modelPositions.length > 0 || spec.modelVariadicFrom !== undefined) {
        lines.push(`complete -c ${name} -n ${fishQuote(condition)} -a ${fishQuote(`(${name} completion --list-models 2>/dev/null) (__fish_complete_suffix .gguf)`)}`);
      }
      for (const { words } of spec.positionalWords) lines.push(`complete -c ${name} -n ${fishQuote(condition)} -a ${fishQuote(words.join(" "))}`);
    }
    for (const sub of spec.subcommands) visit(sub, [...path, sub]);
  };
  visit(root, []);
  return `${lines.join("\n")}\n`;
}
