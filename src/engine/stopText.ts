/**
 * Stop texts for plain completion, matched on the text as it streams.
 *
 * Why not node-llama-cpp's customStopTriggers: in LlamaCompletion they are matched against each
 * token detokenised on its own, which drops the leading space of SentencePiece tokens — a stop
 * text with a space in it ("girl named") never fired, and one that did cut the space before it
 * ("namedL"). LlamaChat is not affected and keeps using them.
 *
 * What could still become a stop text is held back, so nothing of a stop text is ever shown.
 */
export class StopTextFilter {
  private held = "";
  private shown = "";
  private matched = false;
  /** The stop text that ended the reply (the earliest in the text). */
  matchedStop: string | undefined;
  private readonly stops: string[];

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Takes newly generated text; returns what may be shown now (the text before a stop, once one appears). */
  push(chunk: string): string {
    if (this.matched) return "";
    const text = this.held + chunk;
    let cut = -1;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        this.matchedStop = stop;
      }
    }
    if (cut >= 0) {
      this.matched = true;
      this.held = "";
      return this.show(text.slice(0, cut));
    }
    let hold = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, text.length); length > hold; length--) {
        if (text.endsWith(stop.slice(0, length))) {
          hold = length;
          break;
        }
      }
    }
    this.held = text.slice(text.length - hold);
    return this.show(text.slice(0, text.length - hold));
  }

  /** Generation ended without a stop text: what was held back. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return this.show(rest);
  }

  get stopped(): boolean {
    return this.matched;
  }

  /** Everything shown so far: the reply. */
  get text(): string {
    return this.shown;
  }

  private show(text: string): string {
    this.shown += text;
    return text;
  }
}
