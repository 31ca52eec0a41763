import { Box, Static, Text, useApp, useStdout } from "ink";
import React, { useCallback } from "react";
import { useChat } from "./hooks/useChat.js";
import { usePromptInput } from "./hooks/usePromptInput.js";
import type { ChatStartOptions } from "./services.js";
import { Message } from "./components/Message.js";
import { LiveReply } from "./components/LiveReply.js";
import { Prompt } from "./components/Prompt.js";
import { StatusBar } from "./components/StatusBar.js";
import { ThemeContext, useColor } from "./components/theme.js";
import { matchingCommands } from "./slash.js";
import type { ChatItem } from "./state/chatReducer.js";

const MAX_LIVE_ROWS = 16;

type StaticItem = ChatItem | { id: 0; kind: "banner" };

function Banner({ modelName, contextSize }: { modelName: string; contextSize: number }): React.ReactElement {
  const c = useColor();
  return (
    <Text>
      <Text bold color={c("green")}>
        lmrun chat
      </Text>
      <Text dimColor>{` · ${modelName} · ${contextSize}-token context · /help for commands · Ctrl+D exits`}</Text>
    </Text>
  );
}

function Suggestions({ draft, candidates }: { draft: string; candidates: string[] }): React.ReactElement | null {
  const commands = matchingCommands(draft);
  if (commands.length > 0) {
    return (
      <Box flexDirection="column">
        {commands.slice(0, 8).map((c) => (
          <Text key={c.name} dimColor>
            {`  /${c.name}${c.args ? ` ${c.args}` : ""}`.padEnd(30) + c.help}
          </Text>
        ))}
      </Box>
    );
  }
  if (candidates.length === 0) return null;
  return <Text dimColor>{`  ${candidates.join("  ")}`}</Text>;
}

/** The chat screen: the transcript (printed once), the live reply, the prompt and the status bar. */
export function App(props: ChatStartOptions & { color: boolean; onExit?: () => void }): React.ReactElement {
  const { exit } = useApp();
  const notifyExit = props.onExit;
  const onExit = useCallback(() => {
    notifyExit?.();
    exit();
  }, [exit, notifyExit]);
  const chat = useChat({ ...props, exit: onExit });
  const { draft, candidates } = usePromptInput(chat, props.services, onExit);
  const { stdout } = useStdout();
  const { state } = chat;
  const columns = stdout.columns || 80;
  const rows = stdout.rows || 24;
  const draftRows = draft.text.split("\n").length;
  // Rows of the streaming reply on screen: every frame re-renders them, so fewer rows cost less per token.
  const liveRows = Math.max(3, Math.min(MAX_LIVE_ROWS, rows - draftRows - 10));
  const items: StaticItem[] = [{ id: 0, kind: "banner" }, ...state.items];
  return (
    <ThemeContext.Provider value={{ color: props.color }}>
      <Box flexDirection="column">
        <Static key={state.epoch} items={items}>
          {(item) =>
            item.kind === "banner" ? (
              <Banner key={`banner-${state.epoch}`} modelName={state.modelName} contextSize={state.context.size} />
            ) : (
              <Message key={item.id} item={item} />
            )
          }
        </Static>
        {state.live ? <LiveReply text={state.live.text} thinking={state.live.thinking} tokens={state.live.tokens} width={columns} rows={liveRows} /> : null}
        <Box marginTop={1} flexDirection="column">
          {state.hint ? <Text color={props.color ? "yellow" : undefined}>{state.hint}</Text> : null}
          <Prompt draft={draft} active={true} placeholder={state.phase === "generating" ? "" : " type a message, or /help"} />
          <Suggestions draft={draft.text} candidates={candidates} />
        </Box>
        <StatusBar
          modelName={state.modelName}
          context={state.context}
          lastStats={state.lastStats}
          phase={state.phase}
          sampling={state.sampling}
          attachments={state.attachments.length}
        />
      </Box>
    </ThemeContext.Provider>
  );
}
