import type { ChatSampling, ContextUsage, ReplyStats } from "../../engine/chatTypes.js";
import type { SavedMessage } from "../../chat/transcript.js";

/**
 * The chat screen as data. Finished items are append-only (Ink prints them once, in <Static>);
 * anything that rewrites them (clear, regen, load) bumps `epoch`, which redraws the screen.
 * Only `live` (the reply being streamed) changes while tokens arrive.
 */
export interface Attachment {
  name: string;
  text: string;
}

export type ChatItem =
  | { id: number; kind: "user"; text: string; attachments: Attachment[] }
  | { id: number; kind: "assistant"; text: string; stats: ReplyStats | null; stopped: boolean }
  | { id: number; kind: "notice"; text: string; tone: "info" | "warn" | "error" };

export type Phase = "idle" | "generating" | "loading";

export interface ChatState {
  items: ChatItem[];
  epoch: number;
  /** The reply being generated; `thinking`: a thinking model's thoughts so far (shown dim, not kept). */
  live: { text: string; thinking: string; tokens: number } | null;
  phase: Phase;
  modelName: string;
  system: string | undefined;
  sampling: ChatSampling;
  attachments: Attachment[];
  lastStats: ReplyStats | null;
  context: ContextUsage;
  /** A transient line above the prompt (e.g. "press Ctrl+C again to exit"). */
  hint: string | null;
  nextId: number;
}

export type ChatAction =
  | { type: "submit"; text: string; attachments: Attachment[] }
  | { type: "chunk"; text: string; tokens: number; thinking?: string }
  | { type: "done"; text: string; stats: ReplyStats; stopped: boolean; context: ContextUsage }
  | { type: "failed"; message: string; partial: string }
  | { type: "notice"; text: string; tone?: "info" | "warn" | "error" }
  | { type: "clear" }
  | { type: "setSystem"; text: string | undefined }
  | { type: "setSampling"; patch: Partial<ChatSampling> }
  | { type: "attach"; attachment: Attachment }
  | { type: "loading" }
  | { type: "modelReady"; modelName: string; context: ContextUsage }
  | { type: "loadFailed"; message: string }
  | { type: "replaceMessages"; messages: SavedMessage[]; system: string | undefined; context: ContextUsage }
  | { type: "dropLastExchange" }
  | { type: "context"; context: ContextUsage }
  | { type: "hint"; text: string | null }
  | { type: "redraw" };

export function initialChatState(options: {
  modelName: string;
  sampling: ChatSampling;
  system?: string | undefined;
  context: ContextUsage;
  messages?: SavedMessage[];
}): ChatState {
  const base: ChatState = {
    items: [],
    epoch: 0,
    live: null,
    phase: "idle",
    modelName: options.modelName,
    system: options.system,
    sampling: options.sampling,
    attachments: [],
    lastStats: null,
    context: options.context,
    hint: null,
    nextId: 1,
  };
  return options.messages ? withMessages(base, options.messages) : base;
}

function withMessages(state: ChatState, messages: SavedMessage[]): ChatState {
  let nextId = state.nextId;
  const items: ChatItem[] = messages.map((m) =>
    m.role === "user"
      ? { id: nextId++, kind: "user", text: m.text, attachments: m.attachments ?? [] }
      : { id: nextId++, kind: "assistant", text: m.text, stats: m.stats ?? null, stopped: m.stopped === true },
  );
  const lastStats = [...items].reverse().find((i) => i.kind === "assistant")?.stats ?? null;
  return { ...state, items, nextId, lastStats };
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "submit":
      return {
        ...state,
        items: [...state.items, { id: state.nextId, kind: "user", text: action.text, attachments: action.attachments }],
        nextId: state.nextId + 1,
        live: { text: "", thinking: "", tokens: 0 },
        phase: "generating",
        attachments: [],
        hint: null,
      };
    case "chunk":
      if (!state.live) return state;
      return {
        ...state,
        live: { text: state.live.text + action.text, thinking: state.live.thinking + (action.thinking ?? ""), tokens: state.live.tokens + action.tokens },
      };
    case "done":
      return {
        ...state,
        items: [...state.items, { id: state.nextId, kind: "assistant", text: action.text, stats: action.stats, stopped: action.stopped }],
        nextId: state.nextId + 1,
        live: null,
        phase: "idle",
        lastStats: action.stats,
        context: action.context,
      };
    case "failed": {
      const items: ChatItem[] = [...state.items];
      let nextId = state.nextId;
      if (action.partial !== "") items.push({ id: nextId++, kind: "assistant", text: action.partial, stats: null, stopped: true });
      items.push({ id: nextId++, kind: "notice", text: action.message, tone: "error" });
      return { ...state, items, nextId, live: null, phase: "idle" };
    }
    case "notice":
      return {
        ...state,
        items: [...state.items, { id: state.nextId, kind: "notice", text: action.text, tone: action.tone ?? "info" }],
        nextId: state.nextId + 1,
      };
    case "clear":
      return { ...state, items: [], epoch: state.epoch + 1, lastStats: null, attachments: [], hint: null, context: { ...state.context, used: 0, historyTokens: 0 } };
    case "setSystem":
      return { ...state, system: action.text };
    case "setSampling":
      return { ...state, sampling: { ...state.sampling, ...action.patch } };
    case "attach":
      return { ...state, attachments: [...state.attachments, action.attachment] };
    case "loading":
      return { ...state, phase: "loading" };
    case "modelReady":
      return { ...state, phase: "idle", modelName: action.modelName, context: action.context };
    case "loadFailed":
      return chatReducer({ ...state, phase: "idle" }, { type: "notice", text: action.message, tone: "error" });
    case "replaceMessages":
      return { ...withMessages(state, action.messages), system: action.system, epoch: state.epoch + 1, context: action.context, attachments: [] };
    case "dropLastExchange": {
      const lastUser = state.items.map((i) => i.kind).lastIndexOf("user");
      if (lastUser < 0) return state;
      return { ...state, items: state.items.slice(0, lastUser), epoch: state.epoch + 1 };
    }
    case "context":
      return { ...state, context: action.context };
    case "hint":
      return { ...state, hint: action.text };
    case "redraw":
      return { ...state, epoch: state.epoch + 1 };
  }
}

/** The conversation as it is saved and sent: user and assistant items, notices left out. */
export function savedMessages(items: ChatItem[]): SavedMessage[] {
  const messages: SavedMessage[] = [];
  for (const item of items) {
    if (item.kind === "user") messages.push({ role: "user", text: item.text, ...(item.attachments.length > 0 ? { attachments: item.attachments } : {}) });
    else if (item.kind === "assistant") {
      messages.push({ role: "assistant", text: item.text, ...(item.stats ? { stats: item.stats } : {}), ...(item.stopped ? { stopped: true } : {}) });
    }
  }
  return messages;
}

export function lastUserItem(items: ChatItem[]): Extract<ChatItem, { kind: "user" }> | undefined {
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i]!;
    if (item.kind === "user") return item;
  }
  return undefined;
}

export type ContextLevel = "ok" | "warn" | "full";

/** Warn from 80 % so the user can /clear or /save before turns start falling out. */
export function contextLevel(c: ContextUsage): ContextLevel {
  if (c.historyTokens > c.size) return "full";
  return Math.max(c.used, c.historyTokens) >= 0.8 * c.size ? "warn" : "ok";
}
