import { Box, Text } from "ink";
import React from "react";
import { tailToFit } from "../format.js";

/** The reply being generated: plain text (Markdown comes once it is finished), cut to fit the screen. */
export function LiveReply({ text, tokens, width, rows }: { text: string; tokens: number; width: number; rows: number }): React.ReactElement {
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
