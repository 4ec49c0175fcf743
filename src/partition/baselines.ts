import type { BaselineResult } from "./baseline.js";
import { dadsBaseline } from "./baseline-dads.js";
import { dataParallelBaseline } from "./baseline-data-parallel.js";
import {
  computeProportionalBaseline,
  equalLayersBaseline,
  memoryProportionalBaseline,
} from "./baseline-fixed.js";
import { neurosurgeonBaseline } from "./baseline-neurosurgeon.js";
import { singleDeviceBaseline } from "./baseline-single.js";
import type { Objective, ResolvedConstraints } from "./constraints.js";
import type { PlanProblem } from "./problem.js";

/**
 * Every baseline, priced by the same evaluator and constraints as plans: best single device, Neurosurgeon,
 * DADS, equal layers, memory-proportional (exo), compute-proportional. Choices inside a baseline (which
 * device, which cut) are made for `objective`.
 */
export function runBaselines(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
): BaselineResult[] {
  return [
    singleDeviceBaseline(p, rc, objective),
    neurosurgeonBaseline(p, rc, objective),
    dadsBaseline(p, rc, objective),
    equalLayersBaseline(p, rc),
    memoryProportionalBaseline(p, rc),
    computeProportionalBaseline(p, rc),
  ];
}

/**
 * The baselines with replicated stages, priced by the replica evaluator: data parallelism over every allowed
 * device. Apart from {@link runBaselines}, whose splits are one device per stage.
 */
export function runReplicaBaselines(p: PlanProblem, rc: ResolvedConstraints): BaselineResult[] {
  return [dataParallelBaseline(p, rc)];
}
