import type { ChatSampling } from "../engine/chatTypes.js";

/** What slash commands can do to the chat; implemented by hooks/useChat.ts. */
export interface SlashContext {
  notice(text: string, tone?: "info" | "warn" | "error"): void;
  help(): void;
  clear(): void;
  setSystem(text: string | undefined): void;
  setSampling(patch: Partial<ChatSampling>, label: string): void;
  switchModel(ref: string): Promise<void>;
  regenerate(): Promise<void>;
  attach(file: string): Promise<void>;
  save(file: string): Promise<void>;
  load(file: string): Promise<void>;
  stats(): void;
  exit(): void;
}

export interface SlashCommand {
  name: string;
  aliases: string[];
  /** Shown after the name in /help, e.g. "FILE". */
  args: string;
  help: string;
  /** Whether the argument is a file path (Tab completes paths). */
  takesPath?: boolean;
  run(ctx: SlashContext, args: string): void | Promise<void>;
}

/** `/set` keys: the name users type → the sampling field, its parser and bounds. */
export const SETTINGS: Record<string, { field: keyof ChatSampling; integer: boolean; min: number; max: number }> = {
  temp: { field: "temperature", integer: false, min: 0, max: 100 },
  temperature: { field: "temperature", integer: false, min: 0, max: 100 },
  "top-k": { field: "topK", integer: true, min: 0, max: 1_000_000 },
  "top-p": { field: "topP", integer: false, min: 0, max: 1 },
  "min-p": { field: "minP", integer: false, min: 0, max: 1 },
  "repeat-penalty": { field: "repeatPenalty", integer: false, min: 0, max: 10 },
  seed: { field: "seed", integer: true, min: 0, max: 4294967295 },
  "max-tokens": { field: "maxTokens", integer: true, min: 1, max: 10_000_000 },
};
const SETTING_NAMES = ["temp", "top-k", "top-p", "min-p", "repeat-penalty", "seed", "max-tokens"];

/** Parses `/set KEY VALUE`; `seed random` goes back to a fresh seed per reply. */
export function parseSetting(args: string): { patch: Partial<ChatSampling>; label: string } | { error: string } {
  const [rawKey = "", rawValue = "", ...extra] = args.trim().split(/\s+/);
  const key = rawKey.toLowerCase().replace(/_/g, "-");
  const spec = SETTINGS[key];
  if (!spec) return { error: `usage: /set ${SETTING_NAMES.join("|")} VALUE` };
  if (rawValue === "" || extra.length > 0) return { error: `usage: /set ${key} VALUE` };
  if (spec.field === "seed" && rawValue === "random") return { patch: { seed: undefined }, label: "seed random" };
  const value = Number(rawValue);
  if (!Number.isFinite(value) || (spec.integer && !Number.isInteger(value))) {
    return { error: `${key} must be ${spec.integer ? "a whole number" : "a number"}, got "${rawValue}"` };
  }
  if (value < spec.min || value > spec.max) return { error: `${key} must be between ${spec.min} and ${spec.max}, got ${value}` };
  return { patch: { [spec.field]: value }, label: `${key} ${value}` };
}

function required(args: string, usage: string, ctx: SlashContext): string | undefined {
  const value = args.trim();
  if (value === "") ctx.notice(`usage: ${usage}`, "error");
  return value === "" ? undefined : value;
}

export const SLASH_COMMANDS: SlashCommand[] = [
  { name: "help", aliases: ["?", "h"], args: "", help: "list commands and shortcuts", run: (ctx) => ctx.help() },
  { name: "clear", aliases: ["new", "reset"], args: "", help: "start over: forget the conversation (the system prompt stays)", run: (ctx) => ctx.clear() },
  {
    name: "system",
    aliases: ["sys"],
    args: "[TEXT]",
    help: "set the system prompt; without TEXT, remove it",
    run: (ctx, args) => ctx.setSystem(args.trim() === "" ? undefined : args.trim()),
  },
  {
    name: "set",
    aliases: [],
    args: `${SETTING_NAMES.join("|")} VALUE`,
    help: "change sampling for the next replies",
    run: (ctx, args) => {
      const parsed = parseSetting(args);
      if ("error" in parsed) ctx.notice(parsed.error, "error");
      else ctx.setSampling(parsed.patch, parsed.label);
    },
  },
  {
    name: "model",
    aliases: ["load-model"],
    args: "REF",
    help: "switch to another model (a .gguf path or tiny); the conversation is kept",
    takesPath: true,
    run: async (ctx, args) => {
      const ref = required(args, "/model REF", ctx);
      if (ref !== undefined) await ctx.switchModel(ref);
    },
  },
  { name: "regen", aliases: ["retry"], args: "", help: "generate the last reply again", run: (ctx) => ctx.regenerate() },
  {
    name: "read",
    aliases: ["attach"],
    args: "FILE",
    help: "attach a text file to your next message",
    takesPath: true,
    run: async (ctx, args) => {
      const file = required(args, "/read FILE", ctx);
      if (file !== undefined) await ctx.attach(file);
    },
  },
  {
    name: "save",
    aliases: ["export"],
    args: "FILE",
    help: "write the transcript: FILE.md (Markdown) or FILE.json",
    takesPath: true,
    run: async (ctx, args) => {
      const file = required(args, "/save FILE.md|FILE.json", ctx);
      if (file !== undefined) await ctx.save(file);
    },
  },
  {
    name: "load",
    aliases: [],
    args: "FILE",
    help: "continue a transcript saved with /save (.md or .json)",
    takesPath: true,
    run: async (ctx, args) => {
      const file = required(args, "/load FILE", ctx);
      if (file !== undefined) await ctx.load(file);
    },
  },
  { name: "stats", aliases: [], args: "", help: "timings and token counts of the last reply", run: (ctx) => ctx.stats() },
  { name: "exit", aliases: ["quit", "bye", "q"], args: "", help: "leave the chat (also Ctrl+D)", run: (ctx) => ctx.exit() },
];

export function isSlashCommand(text: string): boolean {
  return /^\/[a-z?]/i.test(text.trimStart()) && !text.includes("\n");
}

export function parseSlash(text: string): { name: string; args: string } {
  const match = /^\/(\S*)\s*([\s\S]*)$/.exec(text.trim());
  return { name: (match?.[1] ?? "").toLowerCase(), args: match?.[2] ?? "" };
}

export function findCommand(name: string, commands: SlashCommand[] = SLASH_COMMANDS): SlashCommand | undefined {
  return commands.find((c) => c.name === name || c.aliases.includes(name));
}

/** Commands whose name starts with what was typed after the slash (shown under the prompt). */
export function matchingCommands(draft: string, commands: SlashCommand[] = SLASH_COMMANDS): SlashCommand[] {
  if (!/^\/\S*$/.test(draft)) return [];
  const typed = draft.slice(1).toLowerCase();
  return commands.filter((c) => c.name.startsWith(typed) || c.aliases.some((a) => a.startsWith(typed) && typed !== ""));
}

export function commonPrefix(values: string[]): string {
  if (values.length === 0) return "";
  let prefix = values[0]!;
  for (const v of values.slice(1)) while (!v.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}
