// Compiles lmrun's one native piece, the persistent-threadpool shim (src/engine/native/threadpool.c),
// into dist/native/threadpool.node. Linux only. Runs at install (`prepare`) and in `npm run build`.
// A missing compiler is not an install failure: lmrun then runs without the shim (slower generation
// with more than one thread) and `lmrun info` says why.
import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const source = path.join(root, "src", "engine", "native", "threadpool.c");
const target = path.join(root, "dist", "native", "threadpool.node");

if (process.platform !== "linux") process.exit(0);
const compiler = process.env.CC || "cc";
mkdirSync(path.dirname(target), { recursive: true });
const temporary = `${target}.${process.pid}.tmp`;
try {
  execFileSync(compiler, ["-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-o", temporary, source, "-ldl", "-lpthread"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  renameSync(temporary, target);
} catch (error) {
  rmSync(temporary, { force: true });
  const detail = error.code === "ENOENT" ? `no C compiler (${compiler})` : String(error.stderr || error.message).trim().split("\n")[0];
  process.stderr.write(`lmrun: the threadpool shim was not built (${detail}); generation with several threads will be slower. Install gcc and run \`npm run build\` to add it.\n`);
}
