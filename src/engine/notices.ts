/**
 * One-way channel from the engine to whoever owns the terminal: the engine never writes there
 * itself. main.ts connects it to stderr (info only on a TTY; warnings always).
 */
export interface EngineNotice {
  level: "info" | "warn";
  message: string;
}

let listener: (notice: EngineNotice) => void = () => {};

export function onEngineNotice(next: (notice: EngineNotice) => void): void {
  listener = next;
}

export function emitEngineNotice(notice: EngineNotice): void {
  listener(notice);
}
