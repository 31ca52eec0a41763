import { Box, Text } from "ink";
import React from "react";
import type { Draft } from "../state/draft.js";
import { useColor } from "./theme.js";

/** The draft with a visible cursor (inverse block); each line of a multi-line draft on its own row. */
export function Prompt({ draft, active, placeholder }: { draft: Draft; active: boolean; placeholder: string }): React.ReactElement {
  const c = useColor();
  const lines = draft.text.split("\n");
  let offset = 0;
  return (
    <Box flexDirection="column">
      {lines.map((line, row) => {
        const start = offset;
        offset += line.length + 1;
        const prefix = (
          <Text bold color={c(active ? "green" : "gray")}>
            {row === 0 ? "› " : "… "}
          </Text>
        );
        const cursorHere = active && draft.cursor >= start && draft.cursor <= start + line.length;
        if (draft.text === "" && row === 0) {
          return (
            <Box key={row}>
              {prefix}
              {active ? <Text inverse> </Text> : null}
              <Text dimColor>{placeholder}</Text>
            </Box>
          );
        }
        if (!cursorHere) {
          return (
            <Box key={row}>
              {prefix}
              <Text>{line}</Text>
            </Box>
          );
        }
        const col = draft.cursor - start;
        return (
          <Box key={row}>
            {prefix}
            <Text>
              {line.slice(0, col)}
              <Text inverse>{line.slice(col, col + 1) || " "}</Text>
              {line.slice(col + 1)}
            </Text>
          </Box>
        );
      })}
    </Box>
  );
}
