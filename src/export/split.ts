import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { balancedCuts } from "../partition/cuts.js";
import { choosePartitionOrder, type PartitionOrder } from "../partition/order.js";
import { assignByBoundaries, assignByTensors, type StageAssignment } from "../partition/assign.js";
import type { Manifest } from "./manifest.js";
import { buildStages, type StageModel } from "./stage.js";
import { encodeStages } from "./encode-stages.js";
import { type WriteOptions, writeSplit } from "./write.js";

/** How to split: cut specs (cut indices of the partition order, or tensor names), a stage count, or an assignment. */
export type SplitSpec = { cuts: readonly string[] } | { stages: number } | { assignment: StageAssignment };

/**
 * Turns a split spec into a stage assignment. Cut specs that are all integers are boundaries of the partition
 * order (as `cleave cuts` lists them); otherwise they are tensor names (everything needed to compute the
 * tensor runs before the cut). `stages: k` picks k-1 cuts that balance MACs.
 */
export function resolveSplit(
  model: AnalyzedModel,
  spec: SplitSpec,
  order: PartitionOrder = choosePartitionOrder(model),
): StageAssignment {
  if ("assignment" in spec) return spec.assignment;
  if ("stages" in spec) return assignByBoundaries(model, order, balancedCuts(model, order, spec.stages));
  const cuts = spec.cuts.map((c) => c.trim()).filter((c) => c !== "");
  if (cuts.length === 0)
    throw new ArgumentError(
      "--cuts: give at least one cut (a cut index or tensor name)",
      { field: "cuts" },
      "BAD_CUT",
    );
  const numeric = cuts.map((c) => /^\d+$/.test(c));
  if (numeric.every(Boolean)) return assignByBoundaries(model, order, cuts.map(Number));
  if (numeric.some(Boolean) && cuts.some((c) => /^\d+$/.test(c) && !model.graph.values.has(c))) {
    throw new ArgumentError(
      "--cuts: mix of cut indices and tensor names; use one kind",
      { field: "cuts" },
      "BAD_CUT",
    );
  }
  return assignByTensors(model, cuts);
}

/** Splits a model and writes the stage files and manifest.json into `outDir`; returns the manifest and stages. */
export function splitModel(
  model: AnalyzedModel,
  spec: SplitSpec,
  outDir: string,
  opts: WriteOptions & { order?: PartitionOrder; inputDevice?: string },
): { manifest: Manifest; stages: StageModel[] } {
  const assignment = resolveSplit(model, spec, opts.order);
  const encoded = encodeStages(model, buildStages(model, assignment), opts.encodings ?? [], {
    devices: opts.devices,
    inputDevice: opts.inputDevice,
  });
  const stages = encoded.stages;
  const manifest = writeSplit(model, stages, outDir, { ...opts, devices: encoded.devices ?? opts.devices });
  return { manifest, stages };
}
