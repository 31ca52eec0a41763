import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { cliPath, tempHome } from "../helpers/cli.js";
import { hasShared, sharedCorpus, sharedModel, sharedSkipReason } from "../helpers/shared.js";
import { hasTmux, TmuxPane } from "./tmux.js";

const skipReason = !hasTmux ? "needs tmux (apt-get install tmux)" : !hasShared ? sharedSkipReason : "";

describe.skipIf(skipReason !== "")(`lmrun chat in a real terminal${skipReason ? ` (${skipReason})` : " (tmux)"}`, () => {
  const pane = new TmuxPane();
  const home = tempHome("lmrun-chat-tmux-");
  // A failed step can leave a chat running in the pane; the next test must start from the shell,
  // not type into it.
  afterEach(() => pane.killChild());
  afterAll(() => {
    pane.kill();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("chats, stops a reply with Ctrl+C, saves a transcript and gives the shell back", async () => {
    pane.start({ LMRUN_HOME: home, NO_COLOR: "1" });
    await pane.waitFor((s) => s.includes("SHELL-READY$"), "the shell");
    const model = sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf");
    pane.type(`node ${cliPath} chat ${model} --temp 0 -n 64`);
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("type a message, or /help"), "the chat screen");
    expect(pane.alternateScreen()).toBe(true);

    pane.type("Once upon a time");
    pane.keys("Enter");
    const afterReply = await pane.waitFor((s) => /\d+ tokens · [\d.]+ tok\/s · first token/.test(s), "the first reply");
    expect(afterReply).toContain("› Once upon a time");
    expect(afterReply).toMatch(/ctx \d+\/512/);

    // A reply that would run for a long time, stopped by Ctrl+C.
    pane.type("/set max-tokens 1000000");
    pane.keys("Enter");
    pane.type("Tell me a long story");
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("generating…"), "the second reply to stream");
    pane.keys("C-c");
    const stopped = await pane.waitFor((s) => s.includes("[stopped]"), "the reply to stop");
    expect(stopped).toContain("type a message, or /help");

    const transcript = path.join(home, "chat.md");
    pane.type(`/save ${transcript}`);
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes(`saved 4 messages to ${transcript}`), "the save notice");
    const md = fs.readFileSync(transcript, "utf8");
    expect(md).toMatch(/^# Chat with stories260K-Q8_0-synthetic-chat-template\.gguf\n/);
    expect(md).toContain("## User\n\nOnce upon a time\n\n## Assistant\n\n");
    expect(md).toContain("## User\n\nTell me a long story\n\n## Assistant\n\n");
    expect(md.trimEnd()).toMatch(/_\(stopped\)_$/);

    pane.type("/exit");
    pane.keys("Enter");
    const shell = await pane.waitFor((s) => /SHELL-READY\$ \s*$/.test(s.trimEnd() + " ") && !s.includes("type a message"), "the shell prompt");
    expect(pane.alternateScreen()).toBe(false);
    expect(shell).toMatch(/session \d{8}-\d{6}-[0-9a-f]{4} saved; continue it with: lmrun chat --resume/);
    const sessions = fs.readdirSync(path.join(home, "sessions"));
    expect(sessions).toHaveLength(1);
    const saved = JSON.parse(fs.readFileSync(path.join(home, "sessions", sessions[0]!), "utf8"));
    expect(saved.messages.map((m: { role: string }) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(saved.messages[3].stopped).toBe(true);
  });

  it("resumes the last session with its model, recalls typed history, edits in $EDITOR and exits on Ctrl+D", async () => {
    pane.type(`clear; EDITOR='sed -i s/draft/EDITED/' node ${cliPath} chat --resume -n 16`);
    pane.keys("Enter");
    const resumed = await pane.waitFor((s) => s.includes("type a message, or /help"), "the resumed chat");
    expect(resumed).toContain("› Once upon a time");
    expect(resumed).toContain("› Tell me a long story");
    expect(resumed).toContain("[stopped]");
    expect(resumed).toContain("stories260K-Q8_0-synthetic-chat-template.gguf");
    // The resumed turns are in the model's context (the bar said ctx 0 and the model saw nothing of them).
    expect(resumed).toMatch(/ctx [1-9]\d*\/\d+/);
    pane.keys("Up");
    await pane.waitFor((s) => s.includes("› /exit"), "the last prompt from history");
    pane.keys("C-u");
    await pane.waitFor((s) => !s.includes("› /exit"), "the draft to clear");
    pane.paste("pasted line one\npasted line two");
    await pane.waitFor((s) => s.includes("› pasted line one\n… pasted line two"), "the pasted lines in one draft");
    pane.keys("C-u");
    await pane.waitFor((s) => !s.includes("pasted line one"), "the draft to clear");
    pane.type("my draft");
    await pane.waitFor((s) => s.includes("› my draft"), "the draft");
    pane.keys("C-g");
    await pane.waitFor((s) => s.includes("› my EDITED"), "the draft edited by $EDITOR");
    expect(pane.alternateScreen()).toBe(true);
    pane.keys("C-u");
    await pane.waitFor((s) => !s.includes("› my EDITED"), "the draft to clear");
    pane.keys("C-d");
    await pane.waitFor((s) => /SHELL-READY\$\s*$/.test(s.trimEnd()) && !s.includes("type a message"), "the shell prompt");
    expect(pane.alternateScreen()).toBe(false);
  });

  it("draws its screen with CI=true in the environment (Ink would otherwise hold every frame until exit)", async () => {
    pane.type(`clear; CI=true node ${cliPath} chat tiny -n 8`);
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("type a message, or /help"), "the chat screen");
    expect(pane.alternateScreen()).toBe(true);
    pane.type("/exit");
    pane.keys("Enter");
    await pane.waitFor((s) => /SHELL-READY\$ \s*$/.test(s.trimEnd() + " ") && !s.includes("type a message"), "the shell prompt");
  });

  it("a Ctrl-C that waits for a long native step says so on the terminal, and a second one quits at once (perplexity)", async () => {
    // One 8192-token chunk of the tiny model takes ~20 s here.
    pane.type(`clear; node ${cliPath} perplexity ${sharedModel("stories260K-Q8_0.gguf")} -f ${sharedCorpus("wiki.test.raw")} -c 8192 --chunks 1 -t 1`);
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("trained on only 512 context tokens"), "the computation to start");
    await new Promise((r) => setTimeout(r, 1500));
    pane.keys("C-c");
    await pane.waitFor((s) => s.includes("stopping: llama.cpp is finishing the step it is in (Ctrl-C again to quit at once)"), "the hint");
    pane.keys("C-c");
    // The process dies of SIGINT, as a shell expects (it then also stops the rest of a command list).
    await pane.waitFor((s) => /\^C\n[^\n]*SHELL-READY\$\s*$/.test(s.trimEnd() + " "), "the shell prompt", 5_000);
    pane.type('echo "exit=$?"');
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("exit=130"), "the exit status");
  });

  it("restores the terminal when the chat is killed mid-reply (SIGTERM), exiting 143", async () => {
    pane.type(`clear; node ${cliPath} chat ${sharedModel("stories260K-Q8_0-synthetic-chat-template.gguf")} -n 1000000; echo "exit=$?"`);
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("type a message, or /help"), "the chat screen");
    pane.type("Tell me everything");
    pane.keys("Enter");
    await pane.waitFor((s) => s.includes("generating…"), "a reply to stream");
    const pid = pane.childPid();
    expect(pid).toBeDefined();
    process.kill(pid!, "SIGTERM");
    // It dies of SIGTERM once the screen is restored: the shell's $? is 143.
    await pane.waitFor((s) => s.includes("exit=143"), "the exit status");
    expect(pane.alternateScreen()).toBe(false);
    pane.type("echo typed-back");
    pane.keys("Enter");
    // Echo is back on: the shell shows what was typed, so the terminal left raw mode.
    await pane.waitFor((s) => s.includes("$ echo typed-back\ntyped-back"), "a working shell");
  });
});

describe.skipIf(!hasTmux)(`chat --resume names the model as it was given${hasTmux ? " (tmux)" : " (needs tmux)"}`, () => {
  const pane = new TmuxPane("resume-name");
  const home = tempHome("lmrun-chat-resume-");
  afterAll(() => {
    pane.killChild();
    pane.kill();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("a session started with `tiny` resumes labelled `tiny`, not with the file's name", async () => {
    pane.start({ LMRUN_HOME: home, NO_COLOR: "1" });
    await pane.waitFor((s) => s.includes("SHELL-READY$"), "the shell");
    pane.type(`node ${cliPath} chat tiny --temp 0 -n 4`);
    pane.keys("Enter");
    const first = await pane.waitFor((s) => s.includes("type a message, or /help"), "the chat screen");
    expect(first).toContain("tiny");
    pane.type("Once upon a time");
    pane.keys("Enter");
    await pane.waitFor((s) => /\d+ tokens · [\d.]+ tok\/s · first token/.test(s), "the reply");
    pane.type("/exit");
    pane.keys("Enter");
    // The shell's prompt after the saved line: keys typed before the chat has exited would go to it, not the shell.
    await pane.waitFor((s) => /session \d{8}-\d{6}-[0-9a-f]{4} saved[\s\S]*SHELL-READY\$$/.test(s.trimEnd()), "the shell prompt");

    pane.type(`clear; node ${cliPath} chat --resume -n 4`);
    pane.keys("Enter");
    const resumed = await pane.waitFor((s) => s.includes("type a message, or /help"), "the resumed chat");
    expect(resumed).toContain("› Once upon a time");
    expect(resumed).toMatch(/\btiny\b/);
    expect(resumed).not.toContain("stories260K-Q8_0.gguf");
    pane.keys("C-d");
    await pane.waitFor((s) => /SHELL-READY\$\s*$/.test(s.trimEnd()) && !s.includes("type a message"), "the shell prompt");
  });
});
