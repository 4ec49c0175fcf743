import { existsSync } from "node:fs";
import { type AnalyzedModel, analyzeModel } from "../ir/analyze.js";
import { resolveClusterSpec } from "./cluster-flag.js";
import { buildZooModel, zooNames } from "../zoo/index.js";
import type { CliIO, ModelInputs } from "./command.js";

/**
 * Loads and analyses the model a command names: a path to an .onnx file, or `zoo:<name>` for a zoo
 * model built in memory, with the inputs' shapes and values the flags give. Warnings (an `If` left whole,
 * say) go to `io.err` as `warning:` lines.
 */
export async function loadForCli(spec: string, inputs: ModelInputs = {}, io?: CliIO): Promise<AnalyzedModel> {
  const zoo = spec.startsWith("zoo:") && !existsSync(spec);
  const m = zoo
    ? await analyzeModel(buildZooModel(spec.slice(4)), { ...inputs, source: spec })
    : await analyzeModel(spec, inputs);
  for (const w of m.warnings) io?.err(`warning: ${w}`);
  return m;
}

/** Names accepted after `zoo:`. */
export function zooSpecs(): string[] {
  return zooNames().map((n) => `zoo:${n}`);
}

/** Path of the shipped `local` cluster description (two devices of one pinned CPU core each). */
export function localClusterPath(): string {
  return resolveClusterSpec("local");
}
