import { Box, Text } from "ink";
import React from "react";
import { tailToFit } from "../format.js";

/**
 * The reply being generated: plain text (Markdown comes once it is finished), cut to fit the screen.
 * A thinking model's thoughts show dim until its answer starts (they are not kept in the transcript).
 */
export function LiveReply({ text, thinking, tokens, width, rows }: { text: string; thinking: string; tokens: number; width: number; rows: number }): React.ReactElement {
  if (text === "" && thinking !== "") {
    const thoughts = tailToFit(thinking, width, Math.max(1, rows - 1));
    return (
      <Box flexDirection="column" marginTop={1}>
        <Text dimColor>Thinking…</Text>
        {thoughts.lines.map((line, i) => (
          <Text key={thoughts.hiddenRows + i} dimColor wrap="truncate-end">
            {line === "" ? " " : line}
          </Text>
        ))}
        <Text dimColor>{`thinking… ${tokens} tokens (Ctrl+C stops)`}</Text>
      </Box>
    );
  }
  const { lines, hiddenRows } = tailToFit(text, width, rows);
  return (
    <Box flexDirection="column" marginTop={1}>
      {hiddenRows > 0 ? <Text dimColor>{`… ${hiddenRows} more line(s) above, shown in full when the reply ends`}</Text> : null}
      {lines.map((line, i) => (
        // Keyed by row from the top of the reply so unchanged rows keep their element.
        <Text key={hiddenRows + i} wrap="truncate-end">
          {line === "" ? " " : line}
        </Text>
      ))}
      <Text dimColor>{`generating… ${tokens} tokens (Ctrl+C stops)`}</Text>
    </Box>
  );
}
