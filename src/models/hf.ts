import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LmrunError } from "../errors.js";
import { httpFetch } from "./http.js";
import { abortableSleep } from "./lock.js";

/**
 * Hugging Face endpoint and token, read the way node-llama-cpp and llama.cpp read them:
 * MODEL_ENDPOINT, then HF_ENDPOINT, then huggingface.co; HF_TOKEN, then the huggingface-cli token file.
 */
export function huggingFaceEndpoint(env: NodeJS.ProcessEnv): string {
  for (const value of [env.MODEL_ENDPOINT, env.HF_ENDPOINT]) {
    if (value && /^https?:\/\//i.test(value)) return value.endsWith("/") ? value : `${value}/`;
  }
  return "https://huggingface.co/";
}

export function huggingFaceToken(env: NodeJS.ProcessEnv): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN.trim();
  const hfHome = env.HF_HOME || path.join(env.HOME ?? os.homedir(), ".cache", "huggingface");
  try {
    const token = fs.readFileSync(path.join(hfHome, "token"), "utf8").trim();
    return token === "" ? undefined : token;
  } catch {
    return undefined;
  }
}

/** The token goes only to the Hugging Face endpoint itself, never to the CDN a download redirects to. */
export function authHeadersFor(url: string, env: NodeJS.ProcessEnv): Record<string, string> {
  const token = huggingFaceToken(env);
  if (token === undefined) return {};
  const host = new URL(url).host;
  const endpointHost = new URL(huggingFaceEndpoint(env)).host;
  return host === endpointHost || host === "huggingface.co" || host === "hf.co" ? { authorization: `Bearer ${token}` } : {};
}

export function huggingFaceFileUrl(env: NodeJS.ProcessEnv, user: string, repo: string, file: string, branch = "main"): string {
  const encodedFile = file.split("/").map(encodeURIComponent).join("/");
  return `${huggingFaceEndpoint(env)}${encodeURIComponent(user)}/${encodeURIComponent(repo)}/resolve/${encodeURIComponent(branch)}/${encodedFile}`;
}

export interface RepoFile {
  path: string;
  size: number;
  /** The LFS sha256, when the file is stored in LFS. */
  sha256?: string;
}

/** Lists a repo's files with the Hugging Face API (`/api/models/USER/REPO/tree/BRANCH`). */
export async function listRepoFiles(
  env: NodeJS.ProcessEnv,
  user: string,
  repo: string,
  options: { branch?: string; signal?: AbortSignal } = {},
): Promise<RepoFile[]> {
  const url = `${huggingFaceEndpoint(env)}api/models/${encodeURIComponent(user)}/${encodeURIComponent(repo)}/tree/${encodeURIComponent(options.branch ?? "main")}?recursive=true`;
  const ask = async () => {
    try {
      return await httpFetch(url, { headers: authHeadersFor(url, env), ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      // Offline, DNS, a refused connection: the bare "getaddrinfo ENOTFOUND huggingface.co" said too little.
      throw new LmrunError(`cannot reach ${new URL(url).host} to list the files of ${user}/${repo}: ${(error as Error).message}`, {
        hint: "Check the network connection (or set HF_ENDPOINT to a mirror), then try again",
        cause: error,
      });
    }
  };
  let response = await ask();
  // Rate limited: wait as told (capped) and ask again, a few times.
  for (let attempt = 1; response.status === 429 && attempt <= 4; attempt++) {
    const seconds = Number(response.headers["retry-after"] ?? /t=(\d+)/.exec(String(response.headers.ratelimit ?? ""))?.[1] ?? attempt);
    await abortableSleep(Math.min(Number.isFinite(seconds) ? seconds * 1000 : 1000, 30_000), options.signal);
    response = await ask();
  }
  if (response.status === 429) {
    throw new LmrunError(`Hugging Face is rate limiting requests (HTTP 429) for ${user}/${repo}`, { hint: "Wait a few minutes and try again; set HF_TOKEN for higher limits" });
  }
  if (response.status === 401 || response.status === 403) {
    throw new LmrunError(`Hugging Face refused to list ${user}/${repo} (HTTP ${response.status})`, {
      hint: "The repo may be gated or private: set HF_TOKEN to a token that has access",
    });
  }
  if (response.status === 404) {
    throw new LmrunError(`Hugging Face has no repository ${user}/${repo}`, { hint: "Check the user and repo names on huggingface.co" });
  }
  if (!response.ok) throw new LmrunError(`cannot list the files of ${user}/${repo}: HTTP ${response.status}`);
  const host = new URL(url).host;
  const notTheHub = (what: string) =>
    new LmrunError(`${host} did not answer as the Hugging Face API does when asked for the files of ${user}/${repo}: ${what}`, {
      hint: "Check HF_ENDPOINT (it must be a Hugging Face endpoint or mirror), or a proxy or captive portal in the way",
    });
  let body: Array<{ type?: string; path?: string; size?: number; lfs?: { oid?: string; sha256?: string } }>;
  try {
    body = (await response.json()) as typeof body;
  } catch {
    const type = String(response.headers["content-type"] ?? "no content type").split(";")[0];
    throw notTheHub(`the answer is not JSON (${type})`);
  }
  if (!Array.isArray(body)) throw notTheHub("the answer is not a list of files");
  return body
    .filter((item) => item.type !== "directory" && typeof item.path === "string")
    .map((item) => {
      const sha = item.lfs?.oid ?? item.lfs?.sha256;
      return {
        path: item.path!,
        size: item.lfs && typeof (item.lfs as { size?: number }).size === "number" ? (item.lfs as { size: number }).size : (item.size ?? 0),
        ...(typeof sha === "string" && /^[0-9a-f]{64}$/.test(sha) ? { sha256: sha } : {}),
      };
    });
}
