import { Box, Text } from "ink";
import React from "react";
import { parseMarkdown, type Block, type Span } from "../markdown.js";
import { useColor } from "./theme.js";

function Spans({ spans }: { spans: Span[] }): React.ReactElement {
  const c = useColor();
  return (
    <>
      {spans.map((s, i) => (
        <Text key={i} bold={s.bold ?? false} italic={s.italic ?? false} color={s.code ? c("yellow") : undefined}>
          {s.code && !c("yellow") ? `\`${s.text}\`` : s.text}
        </Text>
      ))}
    </>
  );
}

function BlockView({ block }: { block: Block }): React.ReactElement {
  const c = useColor();
  switch (block.kind) {
    case "code":
      return (
        <Box flexDirection="column" borderStyle="round" borderColor={c("gray")} paddingX={1}>
          {block.lang !== "" ? <Text dimColor>{block.lang}</Text> : null}
          <Text color={c("yellow")}>{block.lines.join("\n") || " "}</Text>
        </Box>
      );
    case "heading":
      return (
        <Text bold underline={block.level <= 2} color={c("magenta")}>
          <Spans spans={block.spans} />
        </Text>
      );
    case "item":
      return (
        <Box paddingLeft={block.depth * 2}>
          <Text color={c("cyan")}>{block.marker} </Text>
          <Text>
            <Spans spans={block.spans} />
          </Text>
        </Box>
      );
    case "quote":
      return (
        <Text dimColor>
          {"│ "}
          <Spans spans={block.spans} />
        </Text>
      );
    case "rule":
      return <Text dimColor>{"─".repeat(24)}</Text>;
    case "blank":
      return <Text> </Text>;
    case "line":
      return (
        <Text>
          <Spans spans={block.spans} />
        </Text>
      );
  }
}

/** A finished reply rendered as Markdown. */
export function Markdown({ text }: { text: string }): React.ReactElement {
  const blocks = parseMarkdown(text);
  return (
    <Box flexDirection="column">
      {blocks.map((b, i) => (
        <BlockView key={i} block={b} />
      ))}
    </Box>
  );
}
