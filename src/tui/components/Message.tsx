import { Box, Text } from "ink";
import React from "react";
import { formatReplyStats } from "../format.js";
import type { ChatItem } from "../state/chatReducer.js";
import { Markdown } from "./Markdown.js";
import { useColor } from "./theme.js";

/** One finished item of the conversation (printed once, in <Static>). */
export function Message({ item }: { item: ChatItem }): React.ReactElement {
  const c = useColor();
  if (item.kind === "user") {
    return (
      <Box flexDirection="column" marginTop={1}>
        {item.attachments.map((a) => (
          <Text key={a.name} dimColor>
            {`+ attached ${a.name} (${a.text.length} chars)`}
          </Text>
        ))}
        <Box>
          <Text bold color={c("cyan")}>
            {"› "}
          </Text>
          <Text>{item.text}</Text>
        </Box>
      </Box>
    );
  }
  if (item.kind === "assistant") {
    return (
      <Box flexDirection="column" marginTop={1}>
        {item.text === "" ? <Text dimColor>(no reply)</Text> : <Markdown text={item.text} />}
        {item.stopped ? <Text color={c("yellow")}>[stopped]</Text> : null}
        {item.stats ? <Text dimColor>{formatReplyStats(item.stats)}</Text> : null}
      </Box>
    );
  }
  const color = item.tone === "error" ? "red" : item.tone === "warn" ? "yellow" : "gray";
  return (
    <Box>
      <Text color={c(color)} dimColor={item.tone === "info"}>
        {item.tone === "error" ? "✗ " : item.tone === "warn" ? "! " : "· "}
      </Text>
      <Text color={c(color)} dimColor={item.tone === "info"}>
        {item.text}
      </Text>
    </Box>
  );
}
