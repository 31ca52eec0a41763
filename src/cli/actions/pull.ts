import type { CommandContext } from "../context.js";
import { CancelledError } from "../../errors.js";
import { formatBytes } from "../../io/format.js";
import { createPullReporter } from "../../io/pullProgress.js";
import { openStore, planReference, pullPlan } from "../../models/resolve.js";

/** `lmrun pull REF...`: each reference in turn; the first failure stops the rest. */
export async function pullReferences(ctx: CommandContext, refs: string[], json: boolean): Promise<void> {
  const store = await openStore(ctx.env);
  for (const ref of refs) {
    const resolution = await planReference(ref, store, ctx.env, ctx.signal);
    if (resolution.kind === "local") {
      const { resolved } = resolution;
      // Nothing to pull, but say so only for a real model file (a missing path is an error, not "done").
      const { checkModelFileHeader } = await import("../../engine/modelFile.js");
      await checkModelFileHeader(resolved.path);
      if (json) ctx.out.jsonLine({ event: "done", model: resolved.displayName, path: resolved.path, source: resolved.source, alreadyPresent: true });
      else ctx.out.text(`${resolved.displayName} is ${resolved.source === "bundled" ? "bundled with lmrun" : "a local file"}: ${resolved.path}\n`);
      continue;
    }
    const { plan } = resolution;
    const reporter = await createPullReporter(plan.displayName, { out: ctx.out, stderr: ctx.stderr, env: ctx.env, quiet: ctx.quiet, json, verbose: ctx.verbose });
    const startedAt = performance.now();
    let results;
    try {
      results = await pullPlan(store, plan, { env: ctx.env, signal: ctx.signal, onEvent: reporter.onEvent });
    } catch (error) {
      reporter.stop();
      // main() exits 130 quietly on Ctrl-C; say what was kept and how to resume.
      if (error instanceof CancelledError) ctx.out.warn(error.message);
      throw error;
    } finally {
      reporter.stop();
    }
    const seconds = (performance.now() - startedAt) / 1000;
    const size = results.reduce((sum, r) => sum + r.size, 0);
    const transferred = results.reduce((sum, r) => sum + r.transferredBytes, 0);
    const entry = results[0]!;
    if (json) {
      ctx.out.jsonLine({
        event: "done",
        model: plan.displayName,
        path: entry.path,
        files: results.map((r) => ({ file: r.file, size: r.size, sha256: r.sha256 ?? null, verifiedAgainst: r.verifiedAgainst, resumedFrom: r.resumedFrom, transferredBytes: r.transferredBytes })),
        sizeBytes: size,
        transferredBytes: transferred,
        alreadyPresent: results.every((r) => r.alreadyPresent),
        seconds: Math.round(seconds * 1000) / 1000,
      });
      continue;
    }
    if (results.every((r) => r.alreadyPresent)) {
      ctx.out.text(`${plan.displayName} is already pulled: ${entry.path}\n`);
      continue;
    }
    const against = [...new Set(results.map((r) => r.verifiedAgainst))].join(", ");
    const how = against === "none" ? "sha256 recorded (no published hash to check against)" : `sha256 verified against ${against === "etag" ? "the server's LFS hash" : against === "api" ? "the Hugging Face API" : "the catalogue"}`;
    const resumed = results.some((r) => r.resumedFrom > 0) ? `, resumed from ${formatBytes(results.reduce((s, r) => s + r.resumedFrom, 0))}` : "";
    ctx.out.text(`pulled ${plan.displayName} (${formatBytes(size)} in ${seconds.toFixed(1)}s${resumed}; ${how}): ${entry.path}\n`);
  }
}
