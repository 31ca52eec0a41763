#!/usr/bin/env node
// Pull throughput: `lmrun pull` (resumable, sha256-verified while it downloads) against `curl` of the
// same file from the same local server, interleaved (lmrun, curl, curl+sha256sum, lmrun, …), repeated.
// The server answers like Hugging Face (302 with X-Linked-Etag, then the bytes with Range support).
//
//   npm run bench:pull [-- --runs 5 --size-mb 400 --rate-mb 100 --per-connection-mb 50]
//
// First on the bare loopback (as fast as both can go), then with the server throttled to --rate-mb
// MB/s (0 skips it), closer to what a Hugging Face download really runs at. --rate-mb and
// --per-connection-mb both pace each HTTP response on its own, as a CDN caps each connection:
// --per-connection-mb adds a round that also times lmrun with LMRUN_PULL_CONNECTIONS=1, so the gain of
// several connections shows beside curl's one.
// The file is ../shared/models/llama2vocab-135m-shape-random-Q4_K_M.gguf repeated up to --size-mb
// (a big file, so that process start-up does not dominate). Not a test: prints medians and bests.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const runs = flag("runs", 5);
const sizeMb = flag("size-mb", 400);
const rateMb = flag("rate-mb", 100);
const perConnectionMb = flag("per-connection-mb", 0);
const source = path.resolve(root, "..", "shared", "models", "llama2vocab-135m-shape-random-Q4_K_M.gguf");
if (!fs.existsSync(source)) {
  console.error(`bench-pull needs ${source} (../shared is not here)`);
  process.exit(1);
}
if (spawnSync("curl", ["--version"]).status !== 0) {
  console.error("bench-pull needs curl on PATH");
  process.exit(1);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "lmrun-bench-pull-"));
const fileName = "bench-Q4_K_M.gguf";
const filePath = path.join(work, fileName);
{
  const chunk = fs.readFileSync(source);
  const fd = fs.openSync(filePath, "w");
  let written = 0;
  while (written < sizeMb * 1e6) {
    fs.writeSync(fd, chunk);
    written += chunk.length;
  }
  fs.closeSync(fd);
}
const size = fs.statSync(filePath).size;
// The hash alone, on bytes already in memory (reading the file is not part of it).
let sha256;
let hashOnlyMs;
{
  const fileBytes = fs.readFileSync(filePath);
  const hashStarted = performance.now();
  sha256 = createHash("sha256").update(fileBytes).digest("hex");
  hashOnlyMs = performance.now() - hashStarted;
}

const server = http.createServer((req, res) => {
  const url = decodeURIComponent(req.url.split("?")[0]);
  if (url === `/lmrun-bench/big/resolve/main/${fileName}`) {
    res.writeHead(302, { location: `/cdn/${fileName}`, "x-linked-etag": `"${sha256}"`, "x-linked-size": String(size) });
    return res.end();
  }
  if (url !== `/cdn/${fileName}`) {
    res.writeHead(404);
    return res.end();
  }
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
  const start = range ? Number(range[1]) : 0;
  const end = range?.[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
  res.writeHead(range ? 206 : 200, {
    "content-length": String(end - start + 1),
    "accept-ranges": "bytes",
    ...(range ? { "content-range": `bytes ${start}-${end}/${size}` } : {}),
  });
  const stream = fs.createReadStream(filePath, { start, end, highWaterMark: 1 << 20 });
  res.on("close", () => stream.destroy());
  if (!throttleMbps) return stream.pipe(res);
  // Paced: each 1 MB chunk leaves when the rate allows it.
  const started = performance.now();
  let sent = 0;
  stream.on("data", (chunk) => {
    stream.pause();
    sent += chunk.length;
    const due = started + (sent / (throttleMbps * 1e6)) * 1000;
    const ok = res.write(chunk);
    const next = () => setTimeout(() => stream.resume(), Math.max(0, due - performance.now()));
    if (ok) next();
    else res.once("drain", next);
  });
  stream.on("end", () => res.end());
});
let throttleMbps = 0;
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const endpoint = `http://127.0.0.1:${server.address().port}`;
const resolveUrl = `${endpoint}/lmrun-bench/big/resolve/main/${fileName}`;

function timed(command, argv, env) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    import("node:child_process").then(({ spawn }) => {
      const child = spawn(command, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      child.on("close", (code) => {
        const ms = performance.now() - started;
        if (code !== 0) reject(new Error(`${command} ${argv.join(" ")} exited ${code}: ${err}`));
        else resolve({ ms, out });
      });
    });
  });
}

async function measureRound(rounds, { oneConnectionToo = false } = {}) {
const results = { lmrun: [], curl: [], curlSha: [], curlSync: [], lmrunTransfer: [], lmrunOne: [] };
for (let i = 0; i < rounds; i++) {
  const home = fs.mkdtempSync(path.join(work, "home-"));
  const pulled = await timed(process.execPath, [path.join(root, "bin", "lmrun.js"), "pull", `hf:lmrun-bench/big/${fileName}`, "--json"], {
    LMRUN_HOME: home,
    HF_ENDPOINT: endpoint,
    CI: "true",
  });
  const done = JSON.parse(pulled.out.trim().split("\n").at(-1));
  if (done.files[0].sha256 !== sha256 || done.files[0].verifiedAgainst !== "etag") throw new Error("lmrun pulled something else");
  results.lmrun.push(pulled.ms);
  results.lmrunTransfer.push(done.seconds * 1000);
  fs.rmSync(home, { recursive: true, force: true });
  if (oneConnectionToo) {
    const oneHome = fs.mkdtempSync(path.join(work, "home-"));
    const one = await timed(process.execPath, [path.join(root, "bin", "lmrun.js"), "pull", `hf:lmrun-bench/big/${fileName}`, "--json"], { LMRUN_HOME: oneHome, HF_ENDPOINT: endpoint, CI: "true", LMRUN_PULL_CONNECTIONS: "1" });
    if (JSON.parse(one.out.trim().split("\n").at(-1)).files[0].sha256 !== sha256) throw new Error("lmrun (1 connection) pulled something else");
    results.lmrunOne.push(one.ms);
    fs.rmSync(oneHome, { recursive: true, force: true });
  }

  const target = path.join(work, `curl-${i}.gguf`);
  results.curl.push((await timed("curl", ["-sSfL", "-o", target, resolveUrl])).ms);
  fs.rmSync(target, { force: true });
  results.curlSha.push((await timed("sh", ["-c", `curl -sSfL -o '${target}' '${resolveUrl}' && sha256sum '${target}' >/dev/null`])).ms);
  fs.rmSync(target, { force: true });
  // What lmrun guarantees before its rename: the bytes are on disk, not only in the page cache.
  results.curlSync.push((await timed("sh", ["-c", `curl -sSfL -o '${target}' '${resolveUrl}' && sync -d '${target}'`])).ms);
  fs.rmSync(target, { force: true });
}
return results;
}

const loopback = await measureRound(runs);
let throttled;
if (rateMb > 0) {
  throttleMbps = rateMb;
  throttled = await measureRound(Math.max(1, Math.min(runs, 3)));
}
let perConnection;
if (perConnectionMb > 0) {
  throttleMbps = perConnectionMb;
  perConnection = await measureRound(Math.max(1, Math.min(runs, 3)), { oneConnectionToo: true });
}
server.close();
fs.rmSync(work, { recursive: true, force: true });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const best = (xs) => Math.min(...xs);
const mbps = (ms) => (size / 1e6 / (ms / 1000)).toFixed(0);
const row = (name, xs) => `${name.padEnd(34)} ${mbps(median(xs)).padStart(6)} MB/s median  ${mbps(best(xs)).padStart(6)} MB/s best  (${(median(xs) / 1000).toFixed(2)} s)`;
function report(title, results) {
  console.log(title);
  console.log(row("lmrun pull (wall, incl. start-up)", results.lmrun));
  console.log(row("lmrun pull (transfer+verify only)", results.lmrunTransfer));
  if (results.lmrunOne.length > 0) console.log(row("lmrun pull, 1 connection (wall)", results.lmrunOne));
  console.log(row("curl", results.curl));
  console.log(row("curl + sha256sum", results.curlSha));
  console.log(row("curl + fdatasync (sync -d)", results.curlSync));
  console.log(`lmrun / curl (median wall):             ${(median(results.curl) / median(results.lmrun)).toFixed(2)}x`);
  console.log(`lmrun / (curl + fdatasync):             ${(median(results.curlSync) / median(results.lmrun)).toFixed(2)}x`);
  console.log(`lmrun / (curl + sha256sum):             ${(median(results.curlSha) / median(results.lmrun)).toFixed(2)}x`);
  console.log(`verification (and start-up) add ${Math.max(0, (median(results.lmrun) - median(results.curl)) / 1000).toFixed(2)} s over plain curl; sha256sum after curl adds ${((median(results.curlSha) - median(results.curl)) / 1000).toFixed(2)} s`);
}
console.log(`pull of a ${(size / 1e6).toFixed(0)} MB file from a local server, interleaved runs, ${os.cpus().length} CPUs, node ${process.version}`);
console.log(`sha256 of the whole file alone (node, bytes already in memory): ${(hashOnlyMs / 1000).toFixed(2)} s\n`);
report(`loopback, unthrottled (${runs} runs):`, loopback);
if (throttled) report(`\nserver throttled to ${rateMb} MB/s per response (${throttled.lmrun.length} runs):`, throttled);
if (perConnection) report(`\neach connection capped at ${perConnectionMb} MB/s (lmrun: ${process.env.LMRUN_PULL_CONNECTIONS ?? 4} connections; curl: 1) (${perConnection.lmrun.length} runs):`, perConnection);
