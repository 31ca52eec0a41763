// Helper for benchmark scripts: make sure llama.cpp's own `llama-bench` and
// `llama-perplexity` (built from node-llama-cpp's bundled llama.cpp source by
// ./build-llama-tools.sh, cached outside the repo) exist, and report which build
// they are.
//
//   import { ensureLlamaTools } from "./llama-tools.mjs";
//   const { llamaBench, llamaPerplexity, buildCommit, buildNumber } = await ensureLlamaTools();
//
// CLI: `node scripts/llama-tools.mjs` prints the result as JSON.
import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const scriptPath = path.join(path.dirname(fileURLToPath(import.meta.url)), "build-llama-tools.sh");

/** @type {Promise<LlamaTools> | undefined} */
let cached;

/**
 * @typedef {object} LlamaTools
 * @property {string} llamaBench        absolute path of the llama-bench binary
 * @property {string} llamaPerplexity   absolute path of the llama-perplexity binary
 * @property {string} buildCommit       commit the binaries report (short git sha of the bundle HEAD, or "unknown")
 * @property {number | null} buildNumber build number the binaries report (`git rev-list --count HEAD`), null if unparsable
 * @property {string | null} version    llama.cpp version string the binaries report (e.g. "0.5.0-dev")
 */

/**
 * Build (first call, ~10+ min on 2 cores) or reuse the cached llama.cpp tools.
 * The build script's progress goes to this process's stderr.
 * Memoized per process.
 * @returns {Promise<LlamaTools>}
 */
export function ensureLlamaTools() {
    cached ??= doEnsure().catch((err) => {
        cached = undefined;
        throw err;
    });
    return cached;
}

async function doEnsure() {
    const stdout = await runBuildScript();
    const vars = parseAssignments(stdout);
    const llamaBench = vars.LLAMA_BENCH;
    const llamaPerplexity = vars.LLAMA_PERPLEXITY;
    if (!llamaBench || !llamaPerplexity)
        throw new Error(`build-llama-tools.sh did not print LLAMA_BENCH/LLAMA_PERPLEXITY; stdout was:\n${stdout}`);

    const info = await readBuildInfo(llamaBench);
    return { llamaBench, llamaPerplexity, ...info };
}

function runBuildScript() {
    return new Promise((resolve, reject) => {
        const child = spawn("bash", [scriptPath], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.setEncoding("utf8");
        child.stdout.on("data", (chunk) => { out += chunk; });
        child.on("error", reject);
        child.on("close", (code, signal) => {
            if (code === 0) resolve(out);
            else reject(new Error(`${scriptPath} failed (${signal ?? `exit code ${code}`})`));
        });
    });
}

/** Parse `KEY=value` lines; values may be bash `printf %q`-escaped (backslash escapes). */
function parseAssignments(text) {
    /** @type {Record<string, string>} */
    const vars = {};
    for (const line of text.split("\n")) {
        const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
        if (m) vars[m[1]] = m[2].replace(/\\(.)/g, "$1");
    }
    return vars;
}

/**
 * `llama-bench --version` (and every common-arg tool) prints, on stderr:
 *   version: 0.5.0-dev (build 1, commit de3ff81)
 *   built with GNU 12.2.0 for Linux x86_64
 * This is the same commit/number llama-bench puts in its markdown footer
 * (`build: <commit> (<number>)`) and in the build_commit/build_number columns of -o json/csv.
 * @param {string} llamaBench
 */
async function readBuildInfo(llamaBench) {
    let text = "";
    try {
        const { stdout, stderr } = await execFileAsync(llamaBench, ["--version"], { timeout: 30_000 });
        text = `${stdout}\n${stderr}`;
    } catch (err) {
        // --version exits 0; if it didn't, still try whatever it printed
        const e = /** @type {{stdout?: string, stderr?: string}} */ (err);
        text = `${e.stdout ?? ""}\n${e.stderr ?? ""}`;
    }
    const m = /version:\s*(\S+)\s*\(build\s+(-?\d+),\s*commit\s+([^)\s]+)\)/.exec(text);
    if (m) return { version: m[1], buildNumber: Number(m[2]), buildCommit: m[3] };

    const footer = /build:\s*(\S+)\s*\((-?\d+)\)/.exec(text);
    if (footer) return { version: null, buildNumber: Number(footer[2]), buildCommit: footer[1] };

    return { version: null, buildNumber: null, buildCommit: "unknown" };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    ensureLlamaTools().then(
        (tools) => console.log(JSON.stringify(tools, null, 2)),
        (err) => {
            console.error(err instanceof Error ? err.message : err);
            process.exitCode = 1;
        }
    );
}
