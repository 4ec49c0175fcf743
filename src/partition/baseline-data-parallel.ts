import { allowedDevices, type BaselineResult, notApplicable } from "./baseline.js";
import type { ResolvedConstraints } from "./constraints.js";
import { evaluateReplicas, type ReplicaCandidate } from "./evaluate-replicas.js";
import type { PlanProblem } from "./problem.js";

const NAME = "data-parallel";
const DESCRIPTION = "whole model replicated on every allowed device, requests shared by speed";

/** Pure data parallelism: one stage, every allowed device a replica (priced by the replica evaluator). */
export function dataParallelBaseline(p: PlanProblem, rc: ResolvedConstraints): BaselineResult {
  const devices = allowedDevices(p, rc);
  if (devices.length < 2) return notApplicable(NAME, DESCRIPTION, "fewer than two devices may run stages");
  const replicas: ReplicaCandidate = { stages: [{ devices, start: 0, end: p.n }] };
  const replicaEvaluation = evaluateReplicas(p, replicas, rc);
  const out: BaselineResult = {
    name: NAME,
    description: DESCRIPTION,
    replicas,
    replicaEvaluation,
    feasible: replicaEvaluation.feasible,
  };
  if (!replicaEvaluation.feasible) out.reason = replicaEvaluation.violations[0]?.message ?? "infeasible";
  return out;
}
