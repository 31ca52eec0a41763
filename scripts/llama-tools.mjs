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
 * @property {string} llamaServer       absolute path of llama-server
 * @property {string} llamaBatchedBench absolute path of llama-batched-bench
 * @property {string} llamaCompletion   absolute path of llama-completion (built with --rpc support)
 * @property {string} ggmlRpcServer     absolute path of ggml-rpc-server (same source, same RPC protocol)
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
    return {
        llamaBench,
        llamaPerplexity,
        llamaServer: vars.LLAMA_SERVER,
        llamaBatchedBench: vars.LLAMA_BATCHED_BENCH,
        llamaCompletion: vars.LLAMA_COMPLETION,
        ggmlRpcServer: vars.GGML_RPC_SERVER,
        ...info,
    };
}

function runBuildScript(env = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn("bash", [scriptPath], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
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

/**
 * llama-bench running node-llama-cpp's own prebuilt CPU kernels: llama-bench built from the same
 * source with dynamically loaded backends (GGML_BACKEND_DL, as node-llama-cpp builds), next to the
 * prebuilt libggml-base.so and libggml-cpu-<variant>.so that lmrun loads, so the only difference from
 * lmrun is the binding. The default llama-bench is a -march=native build, whose kernels are compiled
 * for this very CPU and can be a few % faster than the prebuilt variant. Needs patchelf (the prebuilt
 * libraries have no soname; llama-bench's own libraries must ask for them by file name).
 * @returns {Promise<{ llamaBench: string, env: Record<string, string> }>}
 */
export async function ensurePrebuiltKernelBench() {
    const repoRoot = path.resolve(path.dirname(scriptPath), "..");
    // The native build lives in <cache>/<release>/build/bin/llama-bench; this one beside it, in <release>-dl.
    const release = path.basename(path.resolve(path.dirname((await ensureLlamaTools()).llamaBench), "..", ".."));
    const cacheDir = process.env.LMRUN_LLAMA_TOOLS_DL_DIR ?? path.join(process.env.HOME ?? "/tmp", ".cache", "lmrun-dev", "llama-tools", `${release}-dl`);
    const stdout = await runBuildScript({
        LMRUN_LLAMA_TOOLS_DIR: cacheDir,
        LMRUN_LLAMA_TOOLS_CMAKE_ARGS: "-DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=ON",
    });
    const built = parseAssignments(stdout).LLAMA_BENCH;
    if (!built) throw new Error("the GGML_BACKEND_DL build of llama-bench did not report its path");
    const fs = await import("node:fs");
    const prebuiltDir = path.join(repoRoot, "node_modules", "@node-llama-cpp", `linux-${process.arch}`, "bins", `linux-${process.arch}`);
    if (!fs.existsSync(path.join(prebuiltDir, "libggml-base.so"))) throw new Error(`no prebuilt CPU binaries at ${prebuiltDir} (Linux only)`);
    await execFileAsync("patchelf", ["--version"]).catch(() => {
        throw new Error("patchelf is not installed (apt-get install patchelf)");
    });
    const dir = path.join(cacheDir, "prebuilt-kernels");
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const builtDir = path.dirname(built);
    for (const name of fs.readdirSync(builtDir)) {
        if (name.startsWith("libggml-cpu") || name.startsWith("libggml-base")) continue;
        fs.cpSync(path.join(builtDir, name), path.join(dir, name), { dereference: true });
    }
    for (const name of fs.readdirSync(prebuiltDir)) {
        if (name === "libggml-base.so" || name.startsWith("libggml-cpu-")) fs.copyFileSync(path.join(prebuiltDir, name), path.join(dir, name));
    }
    for (const name of fs.readdirSync(dir)) {
        if (name.startsWith("libggml-cpu-") || name === "libggml-base.so") continue;
        if (name.endsWith(".so") || /\.so\.\d/.test(name) || name === "llama-bench") {
            await execFileAsync("patchelf", ["--replace-needed", "libggml-base.so.0", "libggml-base.so", path.join(dir, name)]).catch(() => {});
        }
    }
    return { llamaBench: path.join(dir, "llama-bench"), env: { LD_LIBRARY_PATH: dir } };
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
