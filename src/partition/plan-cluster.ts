import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { CleaveError } from "../errors.js";
import { assignByBoundaries, type StageAssignment } from "../export/assign.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { type Objective, type PlanConstraints, resolveConstraints } from "./constraints.js";
import { type Candidate, evaluate } from "./evaluate.js";
import { choosePartitionOrder, type PartitionOrder } from "./order.js";
import { planExact } from "./planner-exact.js";
import { buildProblem } from "./problem.js";

/** A planned split, ready to export and run, with its prediction and the best single device beside it. */
export interface ClusterPlan {
  order: PartitionOrder;
  candidate: Candidate;
  assignment: StageAssignment;
  /** Device of each stage. */
  devices: string[];
  stages: Array<{ device: string; nodes: number; time: number }>;
  /** Predicted inferences/s and end-to-end latency (s). */
  throughput: number;
  latency: number;
  /** Bytes crossing the plan's cuts per inference. */
  cutBytes: number;
  /** The whole model on the single device that does best for the objective. */
  single: { device: string; assignment: StageAssignment; throughput: number; latency: number };
}

/**
 * Plans `model` on `cluster` with the exact planner for one objective and prices the best single device
 * beside it. Throws an INFEASIBLE CleaveError when no plan satisfies the constraints.
 */
export function planForCluster(
  model: AnalyzedModel,
  cluster: Cluster,
  cost: CostModel,
  opts: { objective: Objective; constraints?: PlanConstraints },
): ClusterPlan {
  const order = choosePartitionOrder(model);
  const problem = buildProblem(model, order, cluster, cost);
  const rc = resolveConstraints(problem, opts.constraints);
  const result = planExact(problem, { objective: opts.objective, constraints: rc });
  if (!result.candidate) {
    throw new CleaveError(
      "INFEASIBLE",
      `no split of ${model.graph.source} on cluster ${cluster.name} meets the constraints`,
    );
  }
  const ev = evaluate(problem, result.candidate, rc);
  const stages = result.candidate.stages;
  const assignment = assignByBoundaries(
    model,
    order,
    stages.slice(1).map((s) => s.start),
  );
  const singles = problem.devices.map((_, d) =>
    evaluate(problem, { stages: [{ device: d, start: 0, end: problem.n }] }, rc),
  );
  const score = (e: (typeof singles)[number]) =>
    opts.objective === "throughput" ? -e.throughput : opts.objective === "latency" ? e.latency : e.energy;
  let best = 0;
  singles.forEach((e, d) => {
    if (score(e) < score(singles[best])) best = d;
  });
  return {
    order,
    candidate: result.candidate,
    assignment,
    devices: stages.map((s) => problem.devices[s.device].name),
    stages: stages.map((s, k) => ({
      device: problem.devices[s.device].name,
      nodes: s.end - s.start,
      time: ev.stages[k].time,
    })),
    throughput: ev.throughput,
    latency: ev.latency,
    cutBytes: stages.slice(1).reduce((sum, s) => sum + problem.cutBytes[s.start], 0),
    single: {
      device: problem.devices[best].name,
      assignment: assignByBoundaries(model, order, []),
      throughput: singles[best].throughput,
      latency: singles[best].latency,
    },
  };
}
