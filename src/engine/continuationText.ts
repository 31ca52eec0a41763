import type { Token } from "node-llama-cpp";

/** What ContinuationText needs of the model: node-llama-cpp's LlamaModel.detokenize. */
export type Detokenize = (tokens: readonly Token[], specialTokens?: boolean, lastTokens?: readonly Token[]) => string;

/**
 * A raw completion's text as the continuation of its prompt, as llama.cpp prints it. LlamaCompletion
 * detokenizes the first released tokens with nothing before them, so an SPM tokeniser (Llama 2,
 * Mistral, the TinyStories models) drops the word-start space of the first word ("▁One" gives "One"),
 * and prompt + answer reads "friends.One day". Read with the prompt's last tokens before them (node-llama-cpp's
 * own detokenize(tokens, false, lastTokens)), they give " One", which is what llama-server and
 * llama-cli send. Later chunks already come with their predecessors.
 */
export class ContinuationText {
  private firstTokens: Token[] | undefined;
  private settled = false;
  /** What the first chunk lacked ("" when nothing). */
  prefix = "";

  constructor(
    private readonly detokenize: Detokenize,
    private readonly promptTokens: readonly Token[],
  ) {}

  /** The tokens of the chunk that follows (node-llama-cpp calls onToken right before onTextChunk). */
  tokens(tokens: readonly Token[]): void {
    if (!this.settled && this.firstTokens === undefined) this.firstTokens = [...tokens];
  }

  /** A text chunk as it should be shown. */
  chunk(text: string): string {
    if (this.settled) return text;
    this.settled = true;
    if (this.firstTokens === undefined || this.promptTokens.length === 0) return text;
    const inContext = this.detokenize(this.firstTokens, false, this.promptTokens);
    if (inContext.length > text.length && inContext.endsWith(text) && inContext.slice(0, inContext.length - text.length).trim() === "") {
      this.prefix = inContext.slice(0, inContext.length - text.length);
    }
    return this.prefix + text;
  }

  /** The whole answer (LlamaCompletion's `response`, detokenized the same way as its first chunk). */
  whole(response: string): string {
    return response.length > 0 ? this.prefix + response : response;
  }
}
