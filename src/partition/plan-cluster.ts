import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import type { StageAssignment } from "./assign.js";
import { assignByBoundaries } from "./assign.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { Objective, PlanConstraints } from "./constraints.js";
import type { AssignmentCandidate, Candidate } from "./evaluate.js";
import type { ReplicaCandidate } from "./evaluate-replicas.js";
import type { PartitionOrder } from "./order.js";
import type { Plan } from "./plan.js";
import { makePlan } from "./planner.js";
import type { PlanProblem } from "./problem.js";

/**
 * A split that can be exported and run: stage of every node, the devices of every stage (one, or a replica
 * group), and its prediction.
 */
export interface RunnableSplit {
  name: string;
  /** The model its assignment is of, when not the planned model itself (a plan with tiles: the tiled model). */
  model?: AnalyzedModel;
  assignment: StageAssignment;
  /** Devices of each stage: one name, or several for a replicated stage. */
  devices: string[][];
  /** Predicted inferences/s and end-to-end latency, s. */
  throughput: number;
  latency: number;
}

/** A planned split, ready to export and run, with the plan file and the runnable baselines beside it. */
export interface ClusterPlan extends RunnableSplit {
  /** The plan as `cleave plan` writes it (stages, links, totals, baselines, Pareto front). */
  plan: Plan;
  order: PartitionOrder;
  /** Stages of the plan: device (a group's devices joined by "+"), nodes, predicted time of one request, s. */
  stages: Array<{ device: string; nodes: number; time: number }>;
  /** Bytes crossing the plan's cuts per inference. */
  cutBytes: number;
  /** The whole model on the single device that does best for the objective. */
  single: RunnableSplit;
  /** Every feasible baseline, runnable. */
  baselines: RunnableSplit[];
  /**
   * The best plan of one device per stage, when the plan chosen replicates a stage (so a bench can set the two
   * side by side).
   */
  pipeline?: RunnableSplit;
}

/** A stage's devices as shown: the device, or a replica group's devices joined by "+". */
export function stageLabel(group: readonly string[]): string {
  return group.join("+");
}

/** The graph-level stage assignment of a contiguous candidate. */
function fromCandidate(model: AnalyzedModel, order: PartitionOrder, c: Candidate): StageAssignment {
  return assignByBoundaries(
    model,
    order,
    c.stages.slice(1).map((s) => s.start),
  );
}

/** The graph-level stage assignment of a per-position one (e.g. a DADS min-cut). */
function fromPositions(model: AnalyzedModel, order: PartitionOrder, a: AssignmentCandidate): StageAssignment {
  const stageOf = new Int32Array(model.graph.nodes.length).fill(-1);
  order.nodes.forEach((node, pos) => {
    stageOf[node] = a.stageOf[pos];
  });
  return { stageOf, count: a.devices.length };
}

function runnable(
  name: string,
  problem: PlanProblem,
  assignment: StageAssignment,
  devices: ReadonlyArray<number | readonly number[]>,
  ev: { throughput: number; latency: number },
): RunnableSplit {
  return {
    name,
    assignment,
    devices: devices.map((g) => (typeof g === "number" ? [g] : [...g]).map((d) => problem.devices[d].name)),
    throughput: ev.throughput,
    latency: ev.latency,
  };
}

/** The graph-level stage assignment of a replicated candidate (its stages are contiguous). */
function fromReplicas(model: AnalyzedModel, order: PartitionOrder, c: ReplicaCandidate): StageAssignment {
  return assignByBoundaries(
    model,
    order,
    c.stages.slice(1).map((s) => s.start),
  );
}

/**
 * Plans `model` on `cluster` (exact planner, baselines, hierarchical local splits recorded in the plan) and
 * returns it with everything needed to export and run the plan and each baseline. Throws an INFEASIBLE
 * CleaveError explaining the binding constraint when nothing fits.
 */
export function planForCluster(
  model: AnalyzedModel,
  cluster: Cluster,
  cost: CostModel,
  opts: {
    objective: Objective;
    constraints?: PlanConstraints;
    modelPath?: string;
    pareto?: boolean;
    /** Also plan replica groups (default true; see makePlan). */
    replicas?: boolean;
    /** See `PlanRequest.transformProblem`. */
    transformProblem?: (p: PlanProblem) => PlanProblem;
  },
): ClusterPlan {
  const out = makePlan({
    model,
    modelPath: opts.modelPath ?? model.graph.source,
    cluster,
    cost,
    objective: opts.objective,
    constraints: opts.constraints,
    pareto: opts.pareto,
    replicas: opts.replicas,
    transformProblem: opts.transformProblem,
  });
  const { problem, order } = out;
  const baselines: RunnableSplit[] = [];
  for (const b of out.baselines) {
    if (!b.feasible) continue;
    if (b.replicas && b.replicaEvaluation) {
      baselines.push(
        runnable(
          b.name,
          problem,
          fromReplicas(model, order, b.replicas),
          b.replicas.stages.map((s) => s.devices),
          b.replicaEvaluation,
        ),
      );
    } else if (!b.evaluation) continue;
    else if (b.candidate) {
      baselines.push(
        runnable(
          b.name,
          problem,
          fromCandidate(model, order, b.candidate),
          b.candidate.stages.map((s) => s.device),
          b.evaluation,
        ),
      );
    } else if (b.assignment) {
      baselines.push(
        runnable(
          b.name,
          problem,
          fromPositions(model, order, b.assignment),
          b.assignment.devices,
          b.evaluation,
        ),
      );
    }
  }
  const single = baselines.find((b) => b.name === "single")!;
  const pipeline =
    out.candidate && out.evaluation
      ? runnable(
          "pipeline",
          problem,
          fromCandidate(model, order, out.candidate),
          out.candidate.stages.map((s) => s.device),
          out.evaluation,
        )
      : undefined;
  const shared = { plan: out.plan, order, single, baselines };
  if (out.replicated) {
    const { candidate, evaluation } = out.replicated;
    return {
      ...runnable(
        "plan",
        problem,
        fromReplicas(model, order, candidate),
        candidate.stages.map((s) => s.devices),
        evaluation,
      ),
      ...shared,
      stages: candidate.stages.map((s, k) => ({
        device: stageLabel(s.devices.map((d) => problem.devices[d].name)),
        nodes: s.end - s.start,
        time: evaluation.stages[k].time,
      })),
      cutBytes: candidate.stages.slice(1).reduce((sum, s) => sum + problem.cutBytes[s.start], 0),
      pipeline,
    };
  }
  const candidate = out.candidate!;
  const evaluation = out.evaluation!;
  return {
    ...runnable(
      "plan",
      problem,
      fromCandidate(model, order, candidate),
      candidate.stages.map((s) => s.device),
      evaluation,
    ),
    ...shared,
    stages: candidate.stages.map((s, k) => ({
      device: problem.devices[s.device].name,
      nodes: s.end - s.start,
      time: evaluation.stages[k].time,
    })),
    cutBytes: candidate.stages.slice(1).reduce((sum, s) => sum + problem.cutBytes[s.start], 0),
  };
}
