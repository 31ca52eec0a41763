import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { commonPrefix, findCommand, matchingCommands, parseSlash, type SlashCommand, SLASH_COMMANDS } from "./slash.js";

export interface Completion {
  /** The draft after completing (unchanged when there is nothing to add). */
  text: string;
  /** What matched, for the list under the prompt. */
  candidates: string[];
}

export type ListDir = (dir: string) => { name: string; isDir: boolean }[];

export const listDirSync: ListDir = (dir) => {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).map((e) => ({ name: e.name, isDir: e.isDirectory() }));
  } catch {
    return [];
  }
};

/** Tab: complete a command name, or the file argument of /read, /save, /load and /model. */
export function complete(draft: string, listDir: ListDir = listDirSync, commands: SlashCommand[] = SLASH_COMMANDS): Completion {
  if (/^\/\S*$/.test(draft)) {
    const matches = matchingCommands(draft, commands).map((c) => c.name);
    if (matches.length === 1) return { text: `/${matches[0]} `, candidates: matches };
    const prefix = commonPrefix(matches);
    return { text: prefix.length > draft.length - 1 ? `/${prefix}` : draft, candidates: matches };
  }
  const { name, args } = parseSlash(draft);
  const command = findCommand(name, commands);
  if (!draft.startsWith("/") || !command?.takesPath || draft.includes("\n")) return { text: draft, candidates: [] };
  const head = draft.slice(0, draft.length - args.length);
  const expanded = args.startsWith("~/") ? path.join(os.homedir(), args.slice(2)) : args;
  const dirPart = expanded.endsWith("/") ? expanded : path.dirname(expanded);
  const base = expanded.endsWith("/") ? "" : path.basename(expanded);
  const typedDir = args.endsWith("/") ? args : args.includes("/") ? args.slice(0, args.lastIndexOf("/") + 1) : "";
  const entries = listDir(dirPart === "" ? "." : dirPart)
    .filter((e) => e.name.startsWith(base) && (base.startsWith(".") || !e.name.startsWith(".")))
    .map((e) => (e.isDir ? `${e.name}/` : e.name))
    .sort();
  if (entries.length === 0) return { text: draft, candidates: [] };
  const prefix = entries.length === 1 ? entries[0]! : commonPrefix(entries);
  return { text: head + typedDir + (prefix.length >= base.length ? prefix : base), candidates: entries.slice(0, 20) };
}
