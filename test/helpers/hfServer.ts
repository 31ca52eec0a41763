import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { tempHome } from "./cli.js";

/**
 * A real HTTP server on 127.0.0.1 that answers like Hugging Face:
 *   GET /USER/REPO/resolve/BRANCH/FILE  → 302 to /cdn/USER/REPO/FILE with X-Linked-Etag (sha256) and X-Linked-Size
 *   GET /cdn/USER/REPO/FILE             → the bytes, with Accept-Ranges, ETag and Range (206) support
 *   GET /api/models/USER/REPO/tree/BRANCH → the repo's files with their LFS sha256
 * Faults are injected by setting `faults`; every request is recorded with the bytes it was sent.
 */
export interface Faults {
  /** Answer /resolve/ requests with this status (the next `times` requests, default all). */
  status?: { code: number; times?: number; headers?: Record<string, string> };
  /** Close the connection after this many body bytes (the next `times` responses, default 1; with `closedRangeOnly`, only answers to `Range: bytes=A-B`). */
  dropAfterBytes?: { bytes: number; times?: number; closedRangeOnly?: boolean };
  /** Send this many body bytes, then nothing (connection left open) (the next `times`, default 1). */
  stallAfterBytes?: { bytes: number; times?: number };
  /** Flip the byte at this file offset in what is served. */
  corruptAt?: number;
  /** Answer 200 with the whole file even when asked for a range. */
  ignoreRange?: boolean;
  /** Answer 200 with the whole file to closed ranges (`bytes=A-B`) only; open ones (`bytes=N-`) are honoured. */
  ignoreClosedRange?: boolean;
  /** Answer /api/ requests with this instead of the listing (a captive portal, a wrong HF_ENDPOINT). */
  apiAnswer?: { status: number; body: string; contentType: string };
  /** Write in chunks of this size with this pause between them. */
  throttle?: { chunkBytes: number; delayMs: number };
}

export interface RecordedRequest {
  method: string;
  url: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
  bytesSent: number;
}

export interface FakeHf {
  url: string;
  /** Where /resolve/ redirects to: the same server under the name `localhost`. */
  cdnUrl: string;
  faults: Faults;
  requests: RecordedRequest[];
  unknown: string[];
  /** Body bytes sent for one file (from the CDN path) since the last reset. */
  bytesServedFor(file: string): number;
  sha256(user: string, repo: string, file: string): string;
  size(user: string, repo: string, file: string): number;
  addFile(user: string, repo: string, file: string, source: string): void;
  reset(): void;
  close(): Promise<void>;
}

interface HostedFile {
  source: string;
  size: number;
  sha256: string;
}

export async function startFakeHf(repos: Record<string, Record<string, string>>): Promise<FakeHf> {
  const files = new Map<string, HostedFile>();
  const add = (user: string, repo: string, file: string, source: string) => {
    const data = fs.readFileSync(source);
    files.set(`${user}/${repo}/${file}`, { source, size: data.length, sha256: createHash("sha256").update(data).digest("hex") });
  };
  for (const [repoId, entries] of Object.entries(repos)) {
    const [user = "", repo = ""] = repoId.split("/");
    for (const [file, source] of Object.entries(entries)) add(user, repo, file, source);
  }
  const state: FakeHf = {
    url: "",
    cdnUrl: "",
    faults: {},
    requests: [],
    unknown: [],
    bytesServedFor: (file) => state.requests.filter((r) => r.url.startsWith("/cdn/") && r.url.endsWith(`/${file}`)).reduce((sum, r) => sum + r.bytesSent, 0),
    sha256: (user, repo, file) => files.get(`${user}/${repo}/${file}`)!.sha256,
    size: (user, repo, file) => files.get(`${user}/${repo}/${file}`)!.size,
    addFile: add,
    reset: () => {
      state.faults = {};
      state.requests.length = 0;
      state.unknown.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server = http.createServer((req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? "GET",
      url: decodeURIComponent((req.url ?? "/").split("?")[0]!),
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
      bytesSent: 0,
    };
    state.requests.push(record);
    res.on("finish", () => (record.status = res.statusCode));
    res.on("close", () => (record.status ||= res.statusCode));
    const parts = record.url.split("/").filter(Boolean);

    // /api/models/USER/REPO/tree/BRANCH
    if (parts[0] === "api" && parts[1] === "models" && parts[4] === "tree") {
      const answer = state.faults.apiAnswer;
      if (answer) {
        res.writeHead(answer.status, { "content-type": answer.contentType });
        return res.end(answer.body);
      }
      const prefix = `${parts[2]}/${parts[3]}/`;
      const listing = [...files.entries()]
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, f]) => ({ type: "file", oid: f.sha256.slice(0, 40), size: f.size, path: key.slice(prefix.length), lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } }));
      if (listing.length === 0) return sendStatus(res, 404, { error: "Repository not found" });
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify(listing));
    }
    // /USER/REPO/resolve/BRANCH/FILE
    if (parts.length >= 5 && parts[2] === "resolve") {
      const fault = state.faults.status;
      if (fault && (fault.times === undefined || fault.times > 0)) {
        if (fault.times !== undefined) fault.times--;
        return sendStatus(res, fault.code, { error: `fault ${fault.code}` }, fault.headers);
      }
      const key = `${parts[0]}/${parts[1]}/${parts.slice(4).join("/")}`;
      const file = files.get(key);
      if (!file) return sendStatus(res, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
      res.writeHead(302, {
        // Another host name, as Hugging Face redirects to its CDN: credentials must not follow.
        location: `${state.cdnUrl}/cdn/${key}`,
        "x-linked-etag": `"${file.sha256}"`,
        "x-linked-size": String(file.size),
        etag: `"${file.sha256}"`,
        "x-repo-commit": "0".repeat(40),
      });
      return res.end();
    }
    // /cdn/USER/REPO/FILE
    if (parts[0] === "cdn") {
      const file = files.get(parts.slice(1).join("/"));
      if (!file) return sendStatus(res, 404, { error: "not found" });
      return void serveFile(req, res, file, state.faults, record);
    }
    state.unknown.push(`${req.method} ${req.url}`);
    sendStatus(res, 404, { error: "unknown path" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.cdnUrl = `http://localhost:${(server.address() as AddressInfo).port}`;
  return state;
}

function sendStatus(res: http.ServerResponse, code: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(code, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function takeFault(fault: { bytes: number; times?: number } | undefined): number | undefined {
  if (!fault) return undefined;
  const times = fault.times ?? 1;
  if (times <= 0) return undefined;
  fault.times = times - 1;
  return fault.bytes;
}

async function serveFile(req: http.IncomingMessage, res: http.ServerResponse, file: HostedFile, faults: Faults, record: RecordedRequest): Promise<void> {
  let start = 0;
  let end = file.size - 1;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
  const closedRange = range !== null && range[2] !== "";
  const headers: Record<string, string> = { "accept-ranges": "bytes", etag: `"${file.sha256}"`, "content-type": "application/octet-stream" };
  if (range && !faults.ignoreRange && !(closedRange && faults.ignoreClosedRange)) {
    start = Number(range[1]);
    end = range[2] ? Math.min(Number(range[2]), file.size - 1) : file.size - 1;
    if (start >= file.size) {
      res.writeHead(416, { "content-range": `bytes */${file.size}` });
      return void res.end();
    }
    res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${file.size}`, "content-length": String(end - start + 1) });
  } else {
    res.writeHead(200, { ...headers, "content-length": String(file.size) });
  }
  if (req.method === "HEAD") return void res.end();
  const dropAfter = faults.dropAfterBytes?.closedRangeOnly && !closedRange ? undefined : takeFault(faults.dropAfterBytes);
  const stallAfter = takeFault(faults.stallAfterBytes);
  const throttle = faults.throttle;
  const plain = dropAfter === undefined && stallAfter === undefined && faults.corruptAt === undefined && !throttle;
  const stream = fs.createReadStream(file.source, { start, end, highWaterMark: throttle?.chunkBytes ?? 256 * 1024 });
  let position = start;
  try {
    for await (const raw of stream as AsyncIterable<Buffer>) {
      let chunk = raw;
      if (!plain) {
        if (faults.corruptAt !== undefined && faults.corruptAt >= position && faults.corruptAt < position + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[faults.corruptAt - position] ^= 0xff;
        }
        const limit = dropAfter ?? stallAfter;
        if (limit !== undefined && record.bytesSent + chunk.length >= limit) {
          const slice = chunk.subarray(0, Math.max(0, limit - record.bytesSent));
          await write(res, slice);
          record.bytesSent += slice.length;
          if (dropAfter !== undefined) {
            // Let the bytes reach the client, then cut the connection.
            await new Promise((r) => setTimeout(r, 20));
            res.socket?.destroy();
          }
          // A stall: keep the connection open and send nothing more.
          return;
        }
        if (throttle) await new Promise((r) => setTimeout(r, throttle.delayMs));
      }
      if (res.destroyed) return;
      await write(res, chunk);
      record.bytesSent += chunk.length;
      position += chunk.length;
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    stream.destroy();
  }
}

function write(res: http.ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new Error("closed"));
    if (res.write(chunk)) return resolve();
    const onDrain = () => {
      res.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      res.off("drain", onDrain);
      reject(new Error("closed"));
    };
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}

/** The shared test models served as the repo `lmrun-test/stories` (and `lmrun-test/stories-GGUF` for quant picks). */
export function sharedModelsRepo(sharedModelsDir: string): Record<string, Record<string, string>> {
  const pick = (names: string[]) => Object.fromEntries(names.map((n) => [n, path.join(sharedModelsDir, n)]));
  return {
    "lmrun-test/stories": pick(["stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf", "stories260K-f32.gguf", "llama-2-tiny-random.gguf", "invalid-gguf-v1.gguf"]),
    "lmrun-test/stories-GGUF": pick(["stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf", "stories260K-f32.gguf"]),
  };
}

/**
 * The shared test models served for one describe block: the server starts before its tests, is
 * reset before each (with a fresh LMRUN_HOME in `home`), and closes after them.
 */
export function serveSharedModelsPerTest(sharedModelsDir: string): { readonly hf: FakeHf; readonly home: string } {
  const state = {} as { hf: FakeHf; home: string };
  beforeAll(async () => {
    state.hf = await startFakeHf(sharedModelsRepo(sharedModelsDir));
  });
  afterAll(async () => {
    await state.hf.close();
  });
  beforeEach(() => {
    state.hf.reset();
    state.home = tempHome();
  });
  return state;
}

/** Spread into a CLI's env so that a proxy set on the machine does not intercept 127.0.0.1. */
export const withoutProxies = {
  HTTP_PROXY: undefined,
  HTTPS_PROXY: undefined,
  ALL_PROXY: undefined,
  http_proxy: undefined,
  https_proxy: undefined,
  all_proxy: undefined,
  MODEL_ENDPOINT: undefined,
  HF_TOKEN: undefined,
} as const;
