import type { ThinkSetting } from "./types.js";

/**
 * A thinking model's thought segments (node-llama-cpp finds them by the chat wrapper's markers) kept
 * apart from the answer: collected, streamed through onThought, and the whitespace between the thoughts
 * and the answer ("</think>\n\n") left out of the answer, as llama-server and ollama leave it.
 */
export class ThoughtSplitter {
  thinking = "";
  /** Tokens of the thoughts' text (their markers, such as <think>, not counted). */
  thinkingTokens = 0;
  private textShown = false;
  private trimLeading = false;
  private trimmedAnswer = false;

  constructor(
    private readonly hooks: { onText?: ((text: string) => void) | undefined; onThought?: ((text: string) => void) | undefined },
    /** Thought tokens arrived (node-llama-cpp's onToken does not see them): generation is under way. */
    private readonly generating: (tokens: number) => void,
  ) {}

  /**
   * node-llama-cpp's options for a generation. A chat wrapper without thought segments (most models) gets
   * no per-token response-chunk callback: nothing to split, and the token loop stays as it was.
   */
  options(think: ThinkSetting | undefined, canThink: boolean) {
    if (!canThink) return this.hooks.onText ? { onTextChunk: this.hooks.onText } : {};
    return {
      ...(think === false ? { budgets: { thoughtTokens: 0 } } : {}),
      onResponseChunk: (chunk: { type?: string; segmentType?: string; text: string; tokens: readonly unknown[] }) => {
        if (chunk.type !== "segment" || chunk.segmentType !== "thought") return;
        this.thinkingTokens += chunk.tokens.length;
        this.generating(chunk.tokens.length);
        if (!this.textShown) this.trimLeading = this.trimmedAnswer = true;
        if (chunk.text === "") return;
        this.thinking += chunk.text;
        this.hooks.onThought?.(chunk.text);
      },
      onTextChunk: (chunk: string) => this.text(chunk),
    };
  }

  private text(chunk: string): void {
    if (this.trimLeading) {
      chunk = chunk.trimStart();
      if (chunk === "") return;
      this.trimLeading = false;
    }
    if (chunk !== "") this.textShown = true;
    this.hooks.onText?.(chunk);
  }

  /** The whole answer as streamed. */
  answer(response: string): string {
    return this.trimmedAnswer ? response.trimStart() : response;
  }
}

/**
 * Thoughts in a plain completion's text (ollama's raw mode and a continued `context`, where no chat
 * template drives node-llama-cpp's segments): the text between the chat wrapper's thought tags goes to
 * onThought, the rest to onText, as ollama's thinking parser splits it. Whitespace next to the tags is
 * left out (the thoughts and answer read as a chat request's). A prompt that ends with the opening tag
 * starts inside the thoughts.
 */
export class TaggedThoughtSplitter {
  thinking = "";
  answer = "";
  private state: "start" | "thought" | "afterThought" | "answer";
  /** Text not passed on yet: a tag may be starting in it, or whitespace that may end the thoughts. */
  private held = "";

  constructor(
    private readonly open: string,
    private readonly close: string,
    private readonly hooks: { onText?: ((text: string) => void) | undefined; onThought?: ((text: string) => void) | undefined },
    startsInThought: boolean,
  ) {
    this.state = startsInThought ? "thought" : "start";
  }

  push(text: string): void {
    this.held += text;
    for (;;) {
      if (this.state === "start") {
        const trimmed = this.held.trimStart();
        if (trimmed.startsWith(this.open)) {
          this.held = trimmed.slice(this.open.length);
          this.state = "thought";
          continue;
        }
        if (trimmed === "" || this.open.startsWith(trimmed)) return;
        this.state = "answer";
        continue;
      }
      if (this.state === "thought") {
        if (this.thinking === "") {
          // Thoughts the prompt opened may still begin with the tag (the model writes it again): not thought text.
          this.held = this.held.trimStart();
          if (this.held !== "" && this.open.startsWith(this.held)) return;
          if (this.held.startsWith(this.open)) this.held = this.held.slice(this.open.length).trimStart();
        }
        const end = this.held.indexOf(this.close);
        if (end >= 0) {
          this.emitThought(this.held.slice(0, end).trimEnd());
          this.held = this.held.slice(end + this.close.length);
          this.state = "afterThought";
          continue;
        }
        // Keep back what may be the closing tag's start, and trailing whitespace (it may come before the tag).
        let keep = partialSuffix(this.held, this.close);
        const body = this.held.slice(0, this.held.length - keep);
        const trailing = body.length - body.trimEnd().length;
        keep += trailing;
        this.emitThought(this.held.slice(0, this.held.length - keep));
        this.held = this.held.slice(this.held.length - keep);
        return;
      }
      if (this.state === "afterThought") {
        this.held = this.held.trimStart();
        if (this.held === "") return;
        this.state = "answer";
        continue;
      }
      this.emitAnswer(this.held);
      this.held = "";
      return;
    }
  }

  /** The end of generation: what is held back is what it would have been. */
  flush(): void {
    if (this.state === "thought") this.emitThought(this.held.trimEnd());
    else if (this.state === "start" || this.state === "answer") this.emitAnswer(this.held);
    this.held = "";
  }

  private emitThought(text: string): void {
    if (text === "") return;
    this.thinking += text;
    this.hooks.onThought?.(text);
  }

  private emitAnswer(text: string): void {
    if (text === "") return;
    this.answer += text;
    this.hooks.onText?.(text);
  }
}

/** How many characters at the end of `text` could be the start of `tag`. */
function partialSuffix(text: string, tag: string): number {
  for (let length = Math.min(tag.length - 1, text.length); length > 0; length--) {
    if (tag.startsWith(text.slice(text.length - length))) return length;
  }
  return 0;
}
