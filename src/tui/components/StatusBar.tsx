import { Box, Text } from "ink";
import React from "react";
import type { ChatSampling, ContextUsage, ReplyStats } from "../../engine/chatTypes.js";
import { formatContext, formatMs, formatTokensPerSecond } from "../format.js";
import { contextLevel, type Phase } from "../state/chatReducer.js";
import { useColor } from "./theme.js";

export interface StatusBarProps {
  modelName: string;
  context: ContextUsage;
  lastStats: ReplyStats | null;
  phase: Phase;
  sampling: ChatSampling;
  attachments: number;
}

/** Long file names keep their start and their quantisation suffix. */
export function shortName(name: string, max = 36): string {
  if (name.length <= max) return name;
  const tail = name.slice(-14);
  return `${name.slice(0, max - tail.length - 1)}…${tail}`;
}

/** One line: model · context used/total · last reply's speed and time to first token. */
export function StatusBar(props: StatusBarProps): React.ReactElement {
  const c = useColor();
  const level = contextLevel(props.context);
  const s = props.lastStats;
  return (
    <Box flexDirection="column">
      {level === "warn" ? (
        <Text color={c("yellow")}>! context nearly full: when it fills, the oldest turns are dropped from what the model sees (/clear starts over)</Text>
      ) : null}
      {level === "full" ? (
        <Text color={c("yellow")}>! context full: the oldest turns have been dropped from what the model sees; they stay in the transcript</Text>
      ) : null}
      <Text wrap="truncate-end">
        <Text inverse bold>{` ${shortName(props.modelName)} `}</Text>
        <Text color={level === "ok" ? undefined : c("yellow")}>{` ${formatContext(props.context)}`}</Text>
        <Text dimColor>{" │ "}</Text>
        {formatTokensPerSecond(s?.tokensPerSecond ?? null)}
        <Text dimColor>{" │ "}</Text>
        {`ttft ${formatMs(s?.ttftMs ?? null)}`}
        <Text dimColor>{` │ temp ${props.sampling.temperature}${props.sampling.seed !== undefined ? ` seed ${props.sampling.seed}` : ""}`}</Text>
        {props.attachments > 0 ? <Text color={c("cyan")}>{` │ ${props.attachments} file(s) attached`}</Text> : null}
        {props.phase === "loading" ? <Text color={c("cyan")}>{" │ loading model…"}</Text> : null}
        <Text dimColor>{" │ /help"}</Text>
      </Text>
    </Box>
  );
}
