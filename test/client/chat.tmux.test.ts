import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliPath, tempHome } from "../helpers/cli.js";
import { hasShared, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { startServe, until, type ServeProcess } from "../server/helpers.js";
import { hasTmux, TmuxPane } from "../tui/tmux.js";

const skipReason = !hasTmux ? "needs tmux (apt-get install tmux)" : !hasShared ? sharedSkipReason : "";

describe.skipIf(skipReason !== "")(`lmrun chat through a running server${skipReason ? ` (${skipReason})` : " (tmux, real lmrun serve)"}`, () => {
  const pane = new TmuxPane("remote-chat");
  const home = tempHome("lmrun-chat-remote-");
  let server: ServeProcess | undefined;
  afterAll(async () => {
    pane.kill();
    await server?.stop();
    fs.rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it("the TUI chats with the server's model (no load here), stops a reply with Ctrl+C and saves the session with the model's file", async () => {
    const model = sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf");
    server = await startServe([model, "--parallel", "1", "--ctx", "512", "-t", "1"], { home });
    const log = server.log;
    const deadline = Date.now() + 30_000;
    while (!fs.existsSync(path.join(home, "server.json"))) {
      if (Date.now() > deadline) throw new Error(`lmrun serve wrote no address record:\n${log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    pane.start({ LMRUN_HOME: home, NO_COLOR: "1" });
    await pane.waitFor((s) => s.includes("SHELL-READY$"), "the shell");
    pane.type(`node ${cliPath} chat ${model} --temp 0 -n 24`);
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("type a message, or /help"), "the chat screen", 120_000);
    pane.type("Once upon a time");
    pane.keys("Enter");
    const afterReply = await pane.waitFor((s) => /\d+ tokens · [\d.]+ tok\/s · first token/.test(s), "the first reply", 120_000);
    expect(afterReply).toMatch(/ctx \d+\/512/);
    // The access line is written when the response has ended, which can be a moment after the screen shows the reply.
    await until(async () => /POST \/api\/chat 200/.test(log()), "the server's access line for /api/chat", 10_000);

    pane.type("/set max-tokens 500");
    pane.keys("Enter");
    pane.type("Tell me a long story");
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("generating…"), "the second reply to stream", 120_000);
    pane.keys("C-c");
    await pane.waitFor((s) => s.includes("[stopped]"), "the reply to stop", 120_000);

    pane.type("/exit");
    pane.keys("Enter");
    await pane.waitFor((s) => /session \S+ saved/.test(s), "the shell prompt", 60_000);
    const sessions = fs.readdirSync(path.join(home, "sessions"));
    const saved = JSON.parse(fs.readFileSync(path.join(home, "sessions", sessions[0]!), "utf8"));
    expect(saved.model.path).toBe(fs.realpathSync(model));
    expect(saved.messages.map((m: { role: string }) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(saved.messages[1].text.length).toBeGreaterThan(0);
    expect(saved.messages[3].stopped).toBe(true);
    // The stopped reply's connection closed, so the server stops it (at its next token) and frees the slot.
    let busy = -1;
    for (let tries = 0; tries < 200 && busy !== 0; tries++) {
      const ps = (await (await fetch(`${server.url}/api/ps`)).json()) as { models: Array<{ lmrun: { busySlots: number } }> };
      busy = ps.models[0]!.lmrun.busySlots;
      if (busy !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(busy).toBe(0);
  }, 600_000);
});
