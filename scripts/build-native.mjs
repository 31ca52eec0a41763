// Compiles lmrun's native pieces into dist/native/: the persistent-threadpool shim
// (src/engine/native/threadpool.c → threadpool.node) and the RPC bridge (rpc.c → rpc.node, used only
// with an engine build that has llama.cpp's RPC backend). Linux only. Runs at install (`prepare`) and in
// `npm run build`. A missing compiler is not an install failure: lmrun then runs without them (slower
// generation with more than one thread; no --rpc) and `lmrun info` says why.
import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const pieces = [
  { name: "threadpool", consequence: "generation with several threads will be slower" },
  { name: "rpc", consequence: "--rpc and `lmrun rpc-server` are unavailable" },
];

if (process.platform !== "linux") process.exit(0);
const compiler = process.env.CC || "cc";
for (const { name, consequence } of pieces) {
  const source = path.join(root, "src", "engine", "native", `${name}.c`);
  const target = path.join(root, "dist", "native", `${name}.node`);
  mkdirSync(path.dirname(target), { recursive: true });
  const temporary = `${target}.${process.pid}.tmp`;
  try {
    execFileSync(compiler, ["-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-o", temporary, source, "-ldl", "-lpthread", "-lm"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    renameSync(temporary, target);
  } catch (error) {
    rmSync(temporary, { force: true });
    const detail = error.code === "ENOENT" ? `no C compiler (${compiler})` : String(error.stderr || error.message).trim().split("\n")[0];
    process.stderr.write(`lmrun: the native ${name} module was not built (${detail}); ${consequence}. Install gcc and run \`npm run build\` to add it.\n`);
  }
}
