import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { CleaveError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { BaselineResult } from "./baseline.js";
import { runBaselines } from "./baselines.js";
import { type Objective, type PlanConstraints, resolveConstraints } from "./constraints.js";
import { type Candidate, type Evaluation, evaluate, objectiveValue } from "./evaluate.js";
import { explainInfeasible } from "./infeasible.js";
import { choosePartitionOrder, type PartitionOrder } from "./order.js";
import type { Plan, PlanBaseline, PlanLink, PlanStage } from "./plan.js";
import { bestBaseline, type ExactResult, planExact } from "./planner-exact.js";
import { applyLocal, type LocalSplit, localSplits } from "./planner-local.js";
import { type ParetoResult, paretoFront } from "./planner-pareto.js";
import { buildProblem, type PlanProblem } from "./problem.js";

/** What to plan. */
export interface PlanRequest {
  model: AnalyzedModel;
  /** Model path as the user gave it (or `zoo:NAME`), recorded in the plan. */
  modelPath: string;
  inputShapes?: Record<string, number[]>;
  /** Input values the model was analysed with, recorded in the plan (shape and elements). */
  inputValues?: Record<string, { shape: number[]; data: number[] }>;
  cluster: Cluster;
  cost: CostModel;
  objective: Objective;
  constraints?: PlanConstraints;
  /** Also compute the Pareto front over latency, throughput and energy. */
  pareto?: boolean;
  /** Split stages over core clusters where that helps (default true). */
  hierarchical?: boolean;
  /** Partition order (default: the one cleave chooses). */
  order?: PartitionOrder;
  /** Time limit of the exact search, ms (default none); past it the best plan found is returned, marked not exact. */
  timeLimitMs?: number;
}

/** A plan with everything behind it. */
export interface PlanOutcome {
  plan: Plan;
  problem: PlanProblem;
  order: PartitionOrder;
  candidate: Candidate;
  /** Priced plan (local splits applied). */
  evaluation: Evaluation;
  exact: ExactResult;
  local: LocalSplit[];
  baselines: BaselineResult[];
  pareto?: ParetoResult;
}

/**
 * Plans a model on a cluster: the exact planner for the objective under the constraints, then local splits
 * over core clusters, the baselines priced beside it, and (on request) the Pareto front. Throws a CleaveError
 * with code INFEASIBLE explaining which constraint binds when nothing fits.
 */
export function makePlan(req: PlanRequest): PlanOutcome {
  const order = req.order ?? choosePartitionOrder(req.model);
  const problem = buildProblem(req.model, order, req.cluster, req.cost);
  const constraints = req.constraints ?? {};
  const rc = resolveConstraints(problem, constraints);
  // The baselines are priced beside the plan anyway; the best of them seeds the exact search.
  const baselines = runBaselines(problem, rc, req.objective);
  const exact = planExact(problem, {
    objective: req.objective,
    constraints: rc,
    timeLimitMs: req.timeLimitMs,
    incumbent: bestBaseline(problem, rc, req.objective, baselines),
  });
  if (!exact.candidate) {
    const why = explainInfeasible(problem, constraints);
    throw new CleaveError(
      "INFEASIBLE",
      `no plan of ${req.modelPath} on ${req.cluster.name} fits: ${why.lines.join("; ")}`,
      { file: req.cluster.source },
    );
  }
  const candidate = exact.candidate;
  const flat = evaluate(problem, candidate, rc);
  const local = req.hierarchical === false ? [] : localSplits(problem, candidate, flat, req.objective, rc);
  const evaluation = applyLocal(flat, local);
  let pareto: ParetoResult | undefined;
  if (req.pareto) {
    const seeds = baselines.filter((b) => b.feasible && b.candidate).map((b) => b.candidate!);
    pareto = paretoFront(problem, {
      constraints: rc,
      seeds,
      ...(exact.exact ? { known: { [req.objective]: candidate } } : {}),
    });
  }
  const plan = toPlanFile(req, problem, order, candidate, evaluation, exact, local, baselines, pareto);
  return { plan, problem, order, candidate, evaluation, exact, local, baselines, pareto };
}

/** How many times better `plan` is than `other` on an objective (>1: the plan wins). */
export function ratioOf(
  objective: Objective,
  plan: Pick<Evaluation, "latency" | "bottleneck" | "energy">,
  other: Pick<Evaluation, "latency" | "bottleneck" | "energy">,
): number {
  return objectiveValue(other, objective) / objectiveValue(plan, objective);
}

function toPlanFile(
  req: PlanRequest,
  p: PlanProblem,
  order: PartitionOrder,
  candidate: Candidate,
  ev: Evaluation,
  exact: ExactResult,
  local: LocalSplit[],
  baselines: BaselineResult[],
  pareto: ParetoResult | undefined,
): Plan {
  const { graph } = req.model;
  const name = (d: number) => p.devices[d].name;
  const crossing = (b: number) =>
    p.tensors
      .filter((t) => t.def < b && b <= t.lastUse && t.uses.some((u) => u >= b))
      .map((t) => t.name)
      .sort();
  const stages: PlanStage[] = candidate.stages.map((s, k) => {
    const st: PlanStage = {
      index: k,
      device: name(s.device),
      start: s.start,
      end: s.end,
      nodes: order.nodes.slice(s.start, s.end).map((i) => graph.nodes[i].name),
      inputs: crossing(s.start),
      latency: ev.stages[k].time,
      memory: ev.stages[k].memory,
      energy: ev.stages[k].energy,
    };
    if (ev.stages[k].period !== undefined) st.period = ev.stages[k].period;
    if (ev.stages[k].coRun !== undefined) st.coRun = ev.stages[k].coRun;
    const l = local.find((x) => x.stage === k);
    if (l) {
      st.local = l.stages.map((x) => ({
        coreCluster: x.coreCluster,
        start: x.start,
        end: x.end,
        nodes: x.end - x.start,
        latency: x.time,
      }));
    }
    return st;
  });
  const S = stages.length;
  const links: PlanLink[] = ev.transfers
    .filter((t) => t.from !== t.to && t.bytes > 0)
    .map((t) => ({
      from: name(t.from),
      to: name(t.to),
      fromStage: t.boundary - 1,
      toStage: t.boundary === S ? S : t.boundary,
      link: t.link >= 0 ? p.links[t.link].name : "none",
      bytes: t.bytes,
      time: t.time,
      energy: t.energy,
    }));
  const planBaselines: PlanBaseline[] = baselines.map((b) => {
    const e = b.evaluation;
    let stagesOf: PlanBaseline["stages"] = [];
    if (b.candidate)
      stagesOf = b.candidate.stages.map((s) => ({ device: name(s.device), nodes: s.end - s.start }));
    else if (b.assignment) {
      const a = b.assignment;
      stagesOf = a.devices.map((d, k) => ({
        device: name(d),
        nodes: a.stageOf.filter((x) => x === k).length,
      }));
    }
    const out: PlanBaseline = {
      name: b.name,
      description: b.description,
      feasible: b.feasible,
      stages: stagesOf,
      totals: {
        latency: e && Number.isFinite(e.latency) ? e.latency : null,
        throughput: e?.throughput ?? 0,
        energy: e && Number.isFinite(e.energy) ? e.energy : null,
      },
      ratio: e && Number.isFinite(objectiveValue(e, req.objective)) ? ratioOf(req.objective, ev, e) : null,
    };
    if (b.reason !== undefined) out.reason = b.reason;
    if (stagesOf.length === 1) out.singleDevice = stagesOf[0].device;
    return out;
  });
  const plan: Plan = {
    version: 1,
    model: req.modelPath,
    ...(req.inputShapes ? { inputShapes: req.inputShapes } : {}),
    ...(req.inputValues
      ? {
          inputValues: Object.fromEntries(
            Object.entries(req.inputValues).map(([k, v]) => [k, { shape: v.shape, data: v.data }]),
          ),
        }
      : {}),
    cluster: req.cluster.source ?? req.cluster.name,
    clusterName: req.cluster.name,
    order: order.strategy,
    objective: req.objective,
    constraints: req.constraints ?? {},
    planner: {
      method: exact.exact ? "exact" : "best found (budget reached)",
      exact: exact.exact,
      lowerBound: Number.isFinite(exact.lowerBound) ? exact.lowerBound : null,
      labels: exact.stats.labels,
      ms: exact.stats.ms,
    },
    stages,
    links,
    totals: { latency: ev.latency, throughput: ev.throughput, energy: ev.energy },
    baselines: planBaselines,
  };
  if (pareto) {
    const labelOf = (c: Candidate) => {
      const same = (o?: { candidate: Candidate }) =>
        o !== undefined && JSON.stringify(o.candidate) === JSON.stringify(c);
      const tags = [];
      if (same(pareto.optima.latency)) tags.push("least latency");
      if (same(pareto.optima.throughput)) tags.push("most throughput");
      if (same(pareto.optima.energy)) tags.push("least energy");
      return tags.join(", ");
    };
    plan.paretoMethod = pareto.method;
    plan.pareto = pareto.points.map((x) => {
      const label = labelOf(x.candidate);
      return {
        latency: x.latency,
        throughput: x.throughput,
        energy: x.energy,
        ...(label ? { label } : {}),
        stages: x.candidate.stages.map((s) => ({ device: name(s.device), start: s.start, end: s.end })),
      };
    });
  }
  return plan;
}
