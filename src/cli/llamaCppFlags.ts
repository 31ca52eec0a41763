import type { Command } from "commander";

/**
 * llama.cpp's spellings of lmrun's flags. Several of them are several letters after one dash
 * (`-ngl 99`), which commander reads as `-n gl`; the arguments are rewritten to lmrun's long flags
 * before commander parses them. Each command names the spellings that apply to it.
 */
export const LOAD_SPELLINGS: Record<string, string> = {
  "-ngl": "--gpu-layers",
  "--n-gpu-layers": "--gpu-layers",
  "-tb": "--threads-batch",
  "-ctk": "--cache-type-k",
  "-ctv": "--cache-type-v",
  "--ctx-size": "--ctx",
  "-ts": "--tensor-split",
};

export const SAMPLING_SPELLINGS: Record<string, string> = {
  "--n-predict": "--max-tokens",
};

/** llama-bench's own: its long names are lmrun bench's. */
export const LLAMA_BENCH_SPELLINGS: Record<string, string> = {
  "-pg": "--pg",
  "-ub": "--ubatch-size",
  "-ngl": "--n-gpu-layers",
  "-fa": "--flash-attn",
  "-ctk": "--cache-type-k",
  "-ctv": "--cache-type-v",
  "-rpc": "--rpc",
  "-ts": "--tensor-split",
};

/** The arguments with llama.cpp's spellings (also `-ngl=99`) replaced; nothing after `--` is touched. */
export function rewriteSpellings(args: readonly string[], spellings: Record<string, string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    const equals = arg.indexOf("=");
    const flag = equals > 0 ? arg.slice(0, equals) : arg;
    const long = Object.hasOwn(spellings, flag) ? spellings[flag] : undefined;
    out.push(long === undefined ? arg : equals > 0 ? `${long}=${arg.slice(equals + 1)}` : long);
  }
  return out;
}

/** Makes a command accept the spellings, and lists them at the end of its --help. */
export function acceptLlamaCppSpellings(command: Command, spellings: Record<string, string>, note = ""): Command {
  const parseOptions = command.parseOptions.bind(command);
  command.parseOptions = (args: string[]) => parseOptions(rewriteSpellings(args, spellings));
  const listed = Object.entries(spellings)
    .map(([spelling, long]) => `${spelling} = ${long}`)
    .join(", ");
  command.addHelpText("after", `\nllama.cpp spellings: ${listed}\n${note ? `${note}\n` : ""}`);
  return command;
}
