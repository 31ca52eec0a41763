import type { CommandContext } from "../context.js";
import { CancelledError, ExitCode, exitCodeOf, formatError, LmrunError } from "../../errors.js";
import { formatBytes } from "../../io/format.js";
import { createPullReporter } from "../../io/pullProgress.js";
import { openStore, planReference, pullPlan } from "../../models/resolve.js";
import type { ModelStore } from "../../models/store.js";

/**
 * `lmrun pull REF...`: every reference is tried, each reported (with --json, one result line per
 * model, a failed one with its error); the exit code is non-zero when any failed. Ctrl-C stops all.
 */
export async function pullReferences(ctx: CommandContext, refs: string[], json: boolean): Promise<void> {
  const store = await openStore(ctx.env);
  const failed: { ref: string; error: unknown }[] = [];
  for (const ref of refs) {
    try {
      await pullOne(ctx, store, ref, json);
    } catch (error) {
      if (error instanceof CancelledError || ctx.signal.aborted) throw error;
      if (json) ctx.out.jsonLine({ event: "error", model: ref, error: formatError(error), exitCode: exitCodeOf(error) });
      // One model: its own error is the command's (main prints it once).
      if (refs.length === 1) throw error;
      failed.push({ ref, error });
      ctx.out.error(`${ref}: ${formatError(error)}`);
    }
  }
  if (failed.length > 0) {
    const usage = failed.every((f) => exitCodeOf(f.error) === ExitCode.usage);
    throw new LmrunError(`${failed.length} of ${refs.length} pulls failed: ${failed.map((f) => f.ref).join(", ")}`, {
      exitCode: usage ? ExitCode.usage : ExitCode.failure,
      hint: "The others were pulled; see the errors above",
    });
  }
}

async function pullOne(ctx: CommandContext, store: ModelStore, ref: string, json: boolean): Promise<void> {
  {
    const resolution = await planReference(ref, store, ctx.env, ctx.signal);
    if (resolution.kind === "local") {
      const { resolved } = resolution;
      // Nothing to pull, but say so only for a real, whole model file (a missing path or a truncated file is an error, not "done").
      const { checkModelFile } = await import("../../engine/modelFile.js");
      await checkModelFile(resolved.path);
      if (json) ctx.out.jsonLine({ event: "done", model: resolved.displayName, path: resolved.path, source: resolved.source, alreadyPresent: true });
      else ctx.out.text(`${resolved.displayName} is ${resolved.source === "bundled" ? "bundled with lmrun" : resolved.source === "store" ? "in the store" : "a local file"}: ${resolved.path}\n`);
      return;
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
      return;
    }
    if (results.every((r) => r.alreadyPresent)) {
      ctx.out.text(`${plan.displayName} is already pulled: ${entry.path}\n`);
      return;
    }
    const against = [...new Set(results.map((r) => r.verifiedAgainst))].join(", ");
    const how = against === "none" ? "sha256 recorded (no published hash to check against)" : `sha256 verified against ${against === "etag" ? "the server's LFS hash" : against === "api" ? "the Hugging Face API" : "the catalogue"}`;
    const resumed = results.some((r) => r.resumedFrom > 0) ? `, resumed from ${formatBytes(results.reduce((s, r) => s + r.resumedFrom, 0))}` : "";
    ctx.out.text(`pulled ${plan.displayName} (${formatBytes(size)} in ${seconds.toFixed(1)}s${resumed}; ${how}): ${entry.path}\n`);
  }
}
