import type { Command } from "commander";
import type { CommandContext } from "../context.js";
import { UsageError } from "../../errors.js";

interface PullFlags {
  json?: boolean;
  list?: boolean;
}

export function registerPull(program: Command, ctx: CommandContext): void {
  program
    .command("pull")
    .description("download models into the store, verified and resumable (progress on stderr)")
    .argument("[refs...]", "catalogue names (qwen2.5:0.5b, llama3.2:1b@Q8_0), hf:USER/REPO:QUANT, hf:USER/REPO/FILE.gguf or https URLs")
    .option("--json", "print JSON lines: progress events, then one result per model")
    .option("--list", "list the models in the catalogue instead")
    .action(async (refs: string[], flags: PullFlags) => {
      if (flags.list) return listCatalogueModels(ctx, flags.json === true);
      if (refs.length === 0) throw new UsageError("no model given", "Example: lmrun pull qwen2.5:0.5b (lmrun pull --list shows the catalogue)");
      const { pullReferences } = await import("../actions/pull.js");
      await pullReferences(ctx, refs, flags.json === true);
    });
}

async function listCatalogueModels(ctx: CommandContext, json: boolean): Promise<void> {
  const { listCatalogue, loadCatalogue } = await import("../../models/catalogue.js");
  const { formatBytes, textTable } = await import("../../io/format.js");
  const rows = listCatalogue(loadCatalogue());
  if (json) return ctx.out.json(rows);
  ctx.out.text(
    textTable(
      ["NAME", "PARAMS", "QUANTS", "SIZE", "CONTEXT", "LICENCE"],
      rows.map((r) => [r.ref, r.parameters, r.quants.join(","), r.sizeBytes !== undefined ? `${r.sizeIsApproximate ? "~" : ""}${formatBytes(r.sizeBytes)}` : "-", String(r.contextLength), r.license]),
    ),
  );
}
