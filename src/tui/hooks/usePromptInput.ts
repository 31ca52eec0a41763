import { useStdin } from "ink";
import { useCallback, useEffect, useRef, useState } from "react";
import { pushHistory } from "../../chat/inputHistory.js";
import { complete } from "../completion.js";
import { decodeInput, type KeyAction } from "../keymap.js";
import { findCommand, isSlashCommand, parseSlash } from "../slash.js";
import type { ChatServices } from "../services.js";
import * as D from "../state/draft.js";
import type { useChat } from "./useChat.js";

const EXIT_WINDOW_MS = 2000;

type Chat = ReturnType<typeof useChat>;

/**
 * The prompt's keyboard: raw input → keymap → draft edits, history, completion and chat actions.
 * Keys are handled the same while a reply streams, so typing ahead stays responsive.
 */
export function usePromptInput(chat: Chat, services: ChatServices, exit: () => void) {
  const { internal_eventEmitter: events, setRawMode, isRawModeSupported } = useStdin();
  const [draft, setDraft] = useState<D.Draft>(D.EMPTY_DRAFT);
  const [candidates, setCandidates] = useState<string[]>([]);
  const draftRef = useRef(draft);
  draftRef.current = draft;
  const historyRef = useRef<string[]>([...services.history]);
  /** Position while browsing history with Up/Down; null = editing a fresh draft. */
  const browseRef = useRef<{ index: number; stash: string } | null>(null);
  const pastingRef = useRef(false);
  const lastInterruptRef = useRef(0);
  const chatRef = useRef(chat);
  chatRef.current = chat;

  const update = useCallback((next: D.Draft) => {
    draftRef.current = next;
    setDraft(next);
  }, []);

  const submit = useCallback(() => {
    const { state, slash, send, notice } = chatRef.current;
    const raw = draftRef.current.text;
    const text = D.submittedText(raw);
    if (text === "" && state.attachments.length === 0) return;
    const isCommand = isSlashCommand(raw);
    if (state.phase !== "idle" && !(isCommand && ["help", "stats", "exit", "quit", "bye", "q", "?", "h"].includes(parseSlash(raw).name))) {
      chatRef.current.dispatch({ type: "hint", text: "a reply is still coming: wait, or press Ctrl+C to stop it" });
      return;
    }
    historyRef.current = pushHistory(historyRef.current, raw.trim());
    services.saveHistory(historyRef.current);
    browseRef.current = null;
    update(D.EMPTY_DRAFT);
    setCandidates([]);
    if (isCommand) {
      const { name, args } = parseSlash(raw);
      const command = findCommand(name);
      if (!command) {
        notice(`unknown command /${name}: /help lists them`, "error");
        return;
      }
      Promise.resolve(command.run(slash, args)).catch((error: unknown) => notice(`/${name} failed: ${(error as Error).message}`, "error"));
      return;
    }
    void send(text, state.attachments);
  }, [services, update]);

  const historyStep = useCallback(
    (delta: -1 | 1) => {
      const entries = historyRef.current;
      const browse = browseRef.current;
      if (delta === -1) {
        const index = (browse?.index ?? entries.length) - 1;
        if (index < 0) return;
        browseRef.current = { index, stash: browse?.stash ?? draftRef.current.text };
        update(D.draftOf(entries[index]!));
      } else {
        if (!browse) return;
        const index = browse.index + 1;
        if (index >= entries.length) {
          browseRef.current = null;
          update(D.draftOf(browse.stash));
        } else {
          browseRef.current = { ...browse, index };
          update(D.draftOf(entries[index]!));
        }
      }
    },
    [update],
  );

  const onAction = useCallback(
    (action: KeyAction) => {
      const d = draftRef.current;
      const { stop, dispatch, redraw } = chatRef.current;
      if (action !== "interrupt" && chatRef.current.state.hint !== null) dispatch({ type: "hint", text: null });
      switch (action) {
        case "submit":
          if (D.isOpenFence(d.text)) update(D.insertText(d, "\n"));
          else submit();
          return;
        case "newline":
          return update(D.insertText(d, "\n"));
        case "backspace":
          return update(D.backspace(d));
        case "deleteForward":
          return update(D.deleteForward(d));
        case "deleteWordBack":
          return update(D.deleteWordBack(d));
        case "clearLine":
          return update(D.EMPTY_DRAFT);
        case "left":
          return update(D.moveLeft(d));
        case "right":
          return update(D.moveRight(d));
        case "wordLeft":
          return update(D.wordLeft(d));
        case "wordRight":
          return update(D.wordRight(d));
        case "home":
          return update(D.lineHome(d));
        case "end":
          return update(D.lineEnd(d));
        case "up": {
          // While browsing history, Up/Down step through entries even when one has several lines.
          const moved = browseRef.current ? undefined : D.moveVertical(d, -1);
          return moved ? update(moved) : historyStep(-1);
        }
        case "down": {
          const moved = browseRef.current ? undefined : D.moveVertical(d, 1);
          return moved ? update(moved) : historyStep(1);
        }
        case "complete": {
          const result = complete(d.text);
          if (result.text !== d.text) update(D.draftOf(result.text));
          setCandidates(result.candidates.length > 1 ? result.candidates : []);
          return;
        }
        case "escape":
          return setCandidates([]);
        case "interrupt": {
          if (stop()) return dispatch({ type: "hint", text: null });
          if (d.text !== "") {
            update(D.EMPTY_DRAFT);
            return dispatch({ type: "hint", text: null });
          }
          const now = Date.now();
          if (now - lastInterruptRef.current < EXIT_WINDOW_MS) return exit();
          lastInterruptRef.current = now;
          return dispatch({ type: "hint", text: "press Ctrl+C again to exit (or Ctrl+D, or /exit)" });
        }
        case "eof":
          if (d.text === "") {
            stop();
            return exit();
          }
          return update(D.deleteForward(d));
        case "editor": {
          if (!services.openEditor) return;
          const edited = services.openEditor(d.text);
          if (edited !== undefined) update(D.draftOf(edited.replace(/\n+$/, "")));
          return redraw();
        }
        case "redraw":
          return redraw();
        case "pasteStart":
          pastingRef.current = true;
          return;
        case "pasteEnd":
          pastingRef.current = false;
          return;
      }
    },
    [exit, historyStep, services, submit, update],
  );

  // The listener and raw mode are set up once. Re-subscribing on every render (onAction changes
  // with each one) turned raw mode off and on around every redraw; a key typed in that gap went
  // through the terminal's line discipline, which turns Enter into "\n" (a new line, not send).
  const onActionRef = useRef(onAction);
  onActionRef.current = onAction;
  useEffect(() => {
    if (isRawModeSupported) setRawMode(true);
    const onInput = (raw: string) => {
      for (const event of decodeInput(raw, pastingRef.current)) {
        if (event.kind === "text") {
          browseRef.current = null;
          update(D.insertText(draftRef.current, event.text));
        } else {
          onActionRef.current(event.action);
        }
      }
    };
    events?.on("input", onInput);
    return () => {
      events?.removeListener("input", onInput);
      if (isRawModeSupported) setRawMode(false);
    };
  }, [events, isRawModeSupported, setRawMode, update]);

  return { draft, candidates };
}
