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
