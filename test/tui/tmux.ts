import { spawnSync } from "node:child_process";

/** A tmux server of our own (its own socket) with one fixed-size pane: a real terminal for the chat. */
export const hasTmux = spawnSync("tmux", ["-V"], { encoding: "utf8" }).status === 0;

export class TmuxPane {
  private readonly socket = `lmrun-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  constructor(readonly name = "chat") {}

  private tmux(args: string[]): string {
    const result = spawnSync("tmux", ["-L", this.socket, "-f", "/dev/null", ...args], { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`tmux ${args.join(" ")} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** Starts a plain bash with a recognisable prompt. */
  start(env: Record<string, string>, columns = 120, rows = 40): void {
    const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    this.tmux(["new-session", "-d", "-s", this.name, "-x", String(columns), "-y", String(rows), "env", "-u", "CI", ...vars, "PS1=SHELL-READY$ ", "bash", "--norc", "--noprofile"]);
  }

  /** Types literal text (no key names). */
  type(text: string): void {
    this.tmux(["send-keys", "-t", this.name, "-l", text]);
  }

  /** Pastes text the way a terminal does, wrapped in bracketed-paste markers when the app asked for them. */
  paste(text: string): void {
    this.tmux(["set-buffer", "-b", "lmrun-test", text]);
    this.tmux(["paste-buffer", "-p", "-d", "-b", "lmrun-test", "-t", this.name]);
  }

  keys(...names: string[]): void {
    this.tmux(["send-keys", "-t", this.name, ...names]);
  }

  screen(): string {
    return this.tmux(["capture-pane", "-p", "-t", this.name]);
  }

  alternateScreen(): boolean {
    return this.tmux(["display-message", "-p", "-t", this.name, "#{alternate_on}"]).trim() === "1";
  }

  async waitFor(check: (screen: string) => boolean, what: string, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (check(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the screen shows:\n${screen}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The pid of the program running in the pane's shell (the shell's child). */
  childPid(): number | undefined {
    const shell = this.tmux(["display-message", "-p", "-t", this.name, "#{pane_pid}"]).trim();
    const out = spawnSync("ps", ["-o", "pid=", "--ppid", shell], { encoding: "utf8" }).stdout.trim();
    const pid = Number(out.split(/\s+/)[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** Kills what runs in the pane's shell (a chat a failed step left behind), so the next step starts from the shell. */
  killChild(): void {
    const pid = this.childPid();
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  kill(): void {
    spawnSync("tmux", ["-L", this.socket, "kill-server"]);
  }
}
