// lmrun perplexity vs llama.cpp's own llama-perplexity, built from the llama.cpp source that
// node-llama-cpp ships (scripts/build-llama-tools.sh, cached outside the repo).
//
//   npm run bench:vs-llama-perplexity -- [--chunks 100] [--threads 1] [--repeat 3] [--ctx 512] [--models a.gguf,b.gguf] [--file wiki.test.raw]
//
// For each model, both tools run on the same file, ctx, chunks and thread count, interleaved
// (llama lmrun llama lmrun ...) so machine noise hits both alike. Wall time is the whole process
// (load, tokenisation, evaluation). Prints both PPL figures, whether they agree to 4 significant
// digits, and median/best wall times with the ratio lmrun/llama (target: at most 1.2).
// Needs `npm run build` first (it runs bin/lmrun.js, i.e. dist/).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ensureLlamaTools } from "./llama-tools.mjs";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = path.resolve(repoRoot, "..", "shared");

function option(name, fallback) {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const chunks = Number(option("chunks", "100"));
const threads = Number(option("threads", "1"));
const repeat = Number(option("repeat", "3"));
const ctx = Number(option("ctx", "512"));
const file = path.resolve(option("file", path.join(shared, "corpora", "wiki.test.raw")));
const models = option("models", ["stories260K-f32.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"].map((m) => path.join(shared, "models", m)).join(","))
    .split(",")
    .map((m) => path.resolve(m));

for (const needed of [file, ...models, path.join(repoRoot, "dist", "entry.js")]) {
    if (!fs.existsSync(needed)) {
        console.error(`missing ${needed}${needed.includes("dist") ? " (run npm run build first)" : ""}`);
        process.exit(1);
    }
}

/** One run; a run that dies without a figure is retried once (these machines are shared and noisy). */
async function run(command, args) {
    try {
        return await runOnce(command, args);
    } catch (error) {
        console.error(`retrying after: ${error.message.split("\n")[0]}`);
        return runOnce(command, args);
    }
}

function runOnce(command, args) {
    return new Promise((resolve, reject) => {
        const started = process.hrtime.bigint();
        const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true", NO_COLOR: "1" } });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("error", reject);
        child.on("close", (code) => {
            const seconds = Number(process.hrtime.bigint() - started) / 1e9;
            const m = /Final estimate: PPL = ([\d.]+) \+\/- ([\d.]+)/.exec(out);
            if (code !== 0 || !m) reject(new Error(`${path.basename(command)} failed (exit ${code}):\n${out.slice(-2000)}`));
            else resolve({ seconds, ppl: Number(m[1]), error: Number(m[2]), text: m[0] });
        });
    });
}

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const tools = await ensureLlamaTools();
console.log(`llama-perplexity: ${tools.llamaPerplexity} (build ${tools.buildCommit}, ${tools.buildNumber})`);
console.log(`text ${path.basename(file)}, -c ${ctx} --chunks ${chunks} -t ${threads}, ${repeat} interleaved runs per tool and model\n`);

const rows = [];
for (const model of models) {
    const llamaArgs = ["-m", model, "-f", file, "-c", String(ctx), "--chunks", String(chunks), "-t", String(threads)];
    const lmrunArgs = [path.join(repoRoot, "bin", "lmrun.js"), "perplexity", model, "-f", file, "-c", String(ctx), "--chunks", String(chunks), "-t", String(threads)];
    const llama = [];
    const lmrun = [];
    for (let r = 0; r < repeat; r++) {
        llama.push(await run(tools.llamaPerplexity, llamaArgs));
        lmrun.push(await run(process.execPath, lmrunArgs));
        console.log(`${path.basename(model)} run ${r + 1}: llama ${llama.at(-1).seconds.toFixed(2)} s, lmrun ${lmrun.at(-1).seconds.toFixed(2)} s`);
    }
    const a = llama[0];
    const b = lmrun[0];
    rows.push({
        model: path.basename(model),
        llamaPpl: `${a.ppl.toFixed(4)} ± ${a.error.toFixed(5)}`,
        lmrunPpl: `${b.ppl.toFixed(4)} ± ${b.error.toFixed(5)}`,
        same4: a.ppl.toPrecision(4) === b.ppl.toPrecision(4) ? "yes" : "NO",
        relDiff: Math.abs(b.ppl / a.ppl - 1).toExponential(1),
        llamaWall: `${median(llama.map((x) => x.seconds)).toFixed(2)} (${Math.min(...llama.map((x) => x.seconds)).toFixed(2)})`,
        lmrunWall: `${median(lmrun.map((x) => x.seconds)).toFixed(2)} (${Math.min(...lmrun.map((x) => x.seconds)).toFixed(2)})`,
        ratio: (median(lmrun.map((x) => x.seconds)) / median(llama.map((x) => x.seconds))).toFixed(2),
    });
}

const header = {
    model: "model",
    llamaPpl: "llama-perplexity PPL",
    lmrunPpl: "lmrun PPL",
    same4: "4 digits",
    relDiff: "rel. diff",
    llamaWall: "llama s median (best)",
    lmrunWall: "lmrun s median (best)",
    ratio: "lmrun/llama",
};
const keys = Object.keys(header);
const widths = keys.map((k) => Math.max(header[k].length, ...rows.map((r) => String(r[k]).length)));
const line = (r) => "| " + keys.map((k, i) => (i === 0 ? String(r[k]).padEnd(widths[i]) : String(r[k]).padStart(widths[i]))).join(" | ") + " |";
console.log("\n" + line(header));
console.log("| " + widths.map((w, i) => "-".repeat(w - 1) + (i === 0 ? "-" : ":")).join(" | ") + " |");
for (const r of rows) console.log(line(r));
