import { existsSync } from "node:fs";
import { type AnalyzedModel, analyzeModel } from "../ir/analyze.js";
import { resolveClusterSpec } from "./cluster-flag.js";
import { buildZooModel, zooNames } from "../zoo/index.js";

/**
 * Loads and analyses the model a command names: a path to an .onnx file, or `zoo:<name>` for a zoo
 * model built in memory.
 */
export async function loadForCli(
  spec: string,
  inputShapes?: Record<string, number[]>,
): Promise<AnalyzedModel> {
  if (spec.startsWith("zoo:") && !existsSync(spec)) {
    const name = spec.slice(4);
    return analyzeModel(buildZooModel(name), { inputShapes, source: spec });
  }
  return analyzeModel(spec, { inputShapes });
}

/** Names accepted after `zoo:`. */
export function zooSpecs(): string[] {
  return zooNames().map((n) => `zoo:${n}`);
}

/** Path of the shipped `local` cluster description (two devices of one pinned CPU core each). */
export function localClusterPath(): string {
  return resolveClusterSpec("local");
}
