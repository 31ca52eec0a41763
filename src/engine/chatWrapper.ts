import fs from "node:fs";
import path from "node:path";
import type { ChatHistoryItem, ChatWrapper, LlamaModel } from "node-llama-cpp";
import { lmrunHome } from "../config/paths.js";
import { checkKey, readCheckCache, writeCheckCache } from "../fs/checkCache.js";
import { nodeLlamaCppVersion } from "./binding.js";
import { loadNodeLlamaCpp } from "./nodeLlamaCpp.js";
import type { ThinkSetting } from "./types.js";

/**
 * The chat wrapper for a model, as node-llama-cpp's resolveChatWrapper() picks it, remembered per
 * model file.
 *
 * Why: for a model with a Jinja chat template, resolveChatWrapper() renders the template against
 * every specialised wrapper it knows, under several option sets each, to find one that formats
 * identically. Measured here: 400–520 ms on every `lmrun run` or `lmrun chat` start with the
 * 135M-shape test model (Llama 2 template), more than loading the model. The outcome only depends
 * on the file and on node-llama-cpp, so lmrun stores which wrapper (and which of its option sets)
 * was picked, and rebuilds exactly that one next time.
 *
 * Nothing is stored unless the rebuilt wrapper formats a test conversation exactly as the one
 * node-llama-cpp resolved; a missing, corrupt or stale cache means resolving again, never an error.
 */
export interface ChatWrapperChoice {
  /** A name from node-llama-cpp's specializedChatWrapperTypeNames, or "jinjaTemplate". */
  wrapper: string;
  /** Which of the wrapper's option sets (node-llama-cpp's test configurations); -1: its defaults. */
  config: number;
}

interface CacheFile {
  version: 1;
  entries: Record<string, ChatWrapperChoice & { usedAt: string }>;
}

const MAX_ENTRIES = 100;

export function chatWrapperCachePath(): string {
  return path.join(lmrunHome(), "cache", "chat-wrappers.json");
}

export interface ResolvedChatWrapper {
  chatWrapper: ChatWrapper;
  /** Whether it came from the cache (false: resolved by node-llama-cpp now). */
  cached: boolean;
  /** Which wrapper and option set it is, where known (a variant with other options can then be built). */
  choice?: ChatWrapperChoice | undefined;
}

/** `modelPath` is the model's file (node-llama-cpp only exposes its base name). */
export async function chatWrapperFor(model: LlamaModel, modelPath: string, cacheFile: string = chatWrapperCachePath()): Promise<ResolvedChatWrapper> {
  const nlc = await loadNodeLlamaCpp();
  const template = model.fileInfo.metadata?.tokenizer?.chat_template;
  // Without a Jinja template resolution is by name only, which is cheap: nothing to remember.
  if (typeof template !== "string" || template.trim() === "") return { chatWrapper: nlc.resolveChatWrapper(model), cached: false };

  const key = cacheKey(modelPath, template);
  const cache = readCache(cacheFile);
  const hit = key !== undefined ? cache.entries[key] : undefined;
  if (hit) {
    const rebuilt = rebuild(nlc, model, hit);
    if (rebuilt) return { chatWrapper: rebuilt, cached: true, choice: hit };
  }

  const resolved = nlc.resolveChatWrapper(model);
  const choice = key !== undefined ? identify(nlc, model, resolved) : undefined;
  if (key !== undefined && choice) {
    cache.entries[key] = { ...choice, usedAt: new Date().toISOString() };
    await writeCache(cacheFile, cache).catch(() => undefined); // a read-only home only costs the next start the same time
  }
  return { chatWrapper: resolved, cached: false, choice };
}

/**
 * The wrapper to generate with for a request's thinking setting. Where node-llama-cpp's wrapper has the
 * switch the model's own template has, it is used: Qwen3 with thinking off opens the answer with an empty
 * `<think>` block (the template's enable_thinking=false, as llama-server renders it); gpt-oss (Harmony) is
 * told its reasoning effort. Other wrappers, and a wrapper not identified, stay as they are (thinking off
 * is then node-llama-cpp's thought budget of 0).
 */
export function chatWrapperForThinking(nlc: NodeLlamaCpp, resolved: ResolvedChatWrapper, think: ThinkSetting | undefined): ChatWrapper {
  return withTextToolResults(nlc, thinkingVariant(nlc, resolved, think));
}

/**
 * Tool results as the template shows them. A client's tool message is text (often JSON text), and Qwen's
 * templates put it between `<tool_response>` tags as it is (llama-server and ollama render it so);
 * node-llama-cpp's QwenChatWrapper JSON-encodes a string result (`"{\"temp\": 20}"`), unless built
 * with the option its own template check uses for such templates. Other wrappers stay as they are.
 */
function withTextToolResults(nlc: NodeLlamaCpp, chatWrapper: ChatWrapper): ChatWrapper {
  if (chatWrapper instanceof nlc.QwenChatWrapper && "_flatFunctionResultString" in chatWrapper) {
    (chatWrapper as { _flatFunctionResultString: boolean })._flatFunctionResultString = true;
  }
  return chatWrapper;
}

function thinkingVariant(nlc: NodeLlamaCpp, resolved: ResolvedChatWrapper, think: ThinkSetting | undefined): ChatWrapper {
  const { chatWrapper, choice } = resolved;
  if (think === undefined || think === true || choice === undefined || choice.wrapper === "jinjaTemplate") return chatWrapper;
  const wrapperClass = wrapperClassNamed(nlc, choice.wrapper);
  const options = choice.config === -1 ? {} : wrapperClass && optionSets(wrapperClass)[choice.config];
  if (!wrapperClass || !options) return chatWrapper;
  if (chatWrapper instanceof nlc.QwenChatWrapper && think === false && chatWrapper.thoughts !== "discourage") {
    return new wrapperClass({ ...options, thoughts: "discourage" });
  }
  if (chatWrapper instanceof nlc.HarmonyChatWrapper && typeof think === "string" && chatWrapper.reasoningEffort !== think) {
    return new wrapperClass({ ...options, reasoningEffort: think });
  }
  return chatWrapper;
}

type NodeLlamaCpp = typeof import("node-llama-cpp");
type WrapperClass = { new (options?: object): ChatWrapper; _getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate?: () => unknown[] };

/** The file (path, size, mtime), its template and the node-llama-cpp version: any change resolves again. */
function cacheKey(modelPath: string, template: string): string | undefined {
  try {
    const stat = fs.statSync(modelPath);
    return checkKey([nodeLlamaCppVersion(), path.resolve(modelPath), stat.size, stat.mtimeMs, template]);
  } catch {
    return undefined;
  }
}

/** The option sets node-llama-cpp tries for a wrapper, as the options each one builds the wrapper with. */
function optionSets(wrapperClass: WrapperClass): object[] {
  const configurations = wrapperClass._getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate?.() ?? [];
  // resolveChatWrapper builds the chosen wrapper with the second item of a [test, apply, jinja] triple.
  return configurations.map((c) => (Array.isArray(c) ? ((c[1] as object | undefined) ?? {}) : ((c as object) ?? {})));
}

function wrapperClassNamed(nlc: NodeLlamaCpp, name: string): WrapperClass | undefined {
  if (!(nlc.specializedChatWrapperTypeNames as readonly string[]).includes(name)) return undefined;
  const instance = nlc.resolveChatWrapper({ type: name as never, warningLogs: false });
  return instance ? (instance.constructor as WrapperClass) : undefined;
}

/** The wrapper a choice stands for (undefined: it cannot be built here). */
export function rebuild(nlc: NodeLlamaCpp, model: LlamaModel, choice: ChatWrapperChoice): ChatWrapper | undefined {
  try {
    if (choice.wrapper === "jinjaTemplate") {
      const wrapper = nlc.resolveChatWrapper({
        type: "jinjaTemplate",
        tokenizer: model.tokenizer,
        fileInfo: model.fileInfo,
        filename: model.filename,
        bosString: model.tokens.bosString,
        warningLogs: false,
        fallbackToOtherWrappersOnJinjaError: false,
      });
      return wrapper instanceof nlc.JinjaTemplateChatWrapper ? wrapper : undefined;
    }
    const wrapperClass = wrapperClassNamed(nlc, choice.wrapper);
    if (!wrapperClass) return undefined;
    if (choice.config === -1) return new wrapperClass({});
    const options = optionSets(wrapperClass)[choice.config];
    return options ? new wrapperClass(options) : undefined;
  } catch {
    return undefined;
  }
}

/** Which wrapper and option set reproduce `resolved` exactly; undefined when none does. */
export function identify(nlc: NodeLlamaCpp, model: LlamaModel, resolved: ChatWrapper): ChatWrapperChoice | undefined {
  const candidates: ChatWrapperChoice[] = [];
  if (resolved instanceof nlc.JinjaTemplateChatWrapper) {
    candidates.push({ wrapper: "jinjaTemplate", config: 0 });
  } else {
    const name = nlc.specializedChatWrapperTypeNames.find((n) => wrapperClassNamed(nlc, n) === resolved.constructor);
    if (name === undefined) return undefined;
    const sets = optionSets(resolved.constructor as WrapperClass);
    for (let i = 0; i < sets.length; i++) candidates.push({ wrapper: name, config: i });
    candidates.push({ wrapper: name, config: -1 });
  }
  const expected = fingerprint(resolved);
  if (expected === undefined) return undefined;
  return candidates.find((candidate) => {
    const rebuilt = rebuild(nlc, model, candidate);
    return rebuilt !== undefined && fingerprint(rebuilt) === expected;
  });
}

const PROBES: ChatHistoryItem[][] = [
  [
    { type: "system", text: "You are terse." },
    { type: "user", text: "Hi there" },
    { type: "model", response: ["Hello."] },
    { type: "user", text: "What is 2+2?" },
    { type: "model", response: [] },
  ],
  [
    { type: "user", text: "Hi" },
    { type: "model", response: [] },
  ],
];

/** How a wrapper formats the probe conversations, its stop triggers and settings: equal means interchangeable. */
function fingerprint(wrapper: ChatWrapper): string | undefined {
  try {
    const states = PROBES.map((chatHistory) => {
      const state = wrapper.generateContextState({ chatHistory });
      return [state.contextText.toJSON(), state.stopGenerationTriggers.map((t) => t.toJSON()), state.ignoreStartText?.map((t) => t.toJSON())];
    });
    return JSON.stringify([wrapper.wrapperName, states, wrapper.settings]);
  } catch {
    return undefined;
  }
}

function readCache(file: string): CacheFile {
  return readCheckCache<CacheFile>(file, (c) => c.version === 1 && typeof c.entries === "object" && c.entries !== null) ?? { version: 1, entries: {} };
}

async function writeCache(file: string, cache: CacheFile): Promise<void> {
  const entries = Object.entries(cache.entries)
    .filter(([, e]) => e && typeof e.wrapper === "string" && typeof e.config === "number")
    .sort(([, a], [, b]) => String(b.usedAt).localeCompare(String(a.usedAt)))
    .slice(0, MAX_ENTRIES);
  await writeCheckCache(file, { version: 1, entries: Object.fromEntries(entries) });
}
