import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { CleaveError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { BaselineResult } from "./baseline.js";
import { runBaselines, runReplicaBaselines } from "./baselines.js";
import { type Objective, type PlanConstraints, resolveConstraints } from "./constraints.js";
import { type Candidate, type Evaluation, evaluate, objectiveValue } from "./evaluate.js";
import {
  asPipelineCandidate,
  asReplicaCandidate,
  type ReplicaCandidate,
  type ReplicaEvaluation,
} from "./evaluate-replicas.js";
import { explainInfeasible } from "./infeasible.js";
import { choosePartitionOrder, type PartitionOrder } from "./order.js";
import type { Plan, PlanBaseline, PlanLink, PlanStage } from "./plan.js";
import { bestBaseline, type ExactResult, planExact } from "./planner-exact.js";
import { applyLocal, type LocalSplit, localSplits } from "./planner-local.js";
import { type ParetoResult, paretoFront } from "./planner-pareto.js";
import { planReplicas, type ReplicaPlanResult } from "./planner-replicas.js";
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
  /**
   * Also plan replica groups (a stage run by several devices, requests shared by speed; default true). False:
   * one device per stage.
   */
  replicas?: boolean;
  /** Rewrites the planning problem before any search (e.g. `encodedProblem`: cut tensors sent encoded). */
  transformProblem?: (p: PlanProblem) => PlanProblem;
}

/**
 * Time the replica-group search gets without a time limit, ms: the clusters users have (up to a few devices)
 * finish well within it (local, hetero-pair: 10-30 ms); on large fleets the search stops here, keeps the best plan found with a
 * proven bound, and the plan says it was limited (`--time-limit` gives it more).
 */
export const REPLICA_TIME_LIMIT_MS = 1000;

/** A plan with everything behind it. */
export interface PlanOutcome {
  plan: Plan;
  problem: PlanProblem;
  order: PartitionOrder;
  /**
   * The best plan of one device per stage (undefined when only a replicated plan is feasible). It is the plan
   * chosen unless `replicated` is set.
   */
  candidate?: Candidate;
  /** That pipeline priced (local splits applied). */
  evaluation?: Evaluation;
  /** The plan chosen, when it replicates a stage: `plan` then describes it. */
  replicated?: { candidate: ReplicaCandidate; evaluation: ReplicaEvaluation };
  exact: ExactResult;
  /** The search over replica groups (absent with `replicas: false`). */
  replicaSearch?: ReplicaPlanResult;
  local: LocalSplit[];
  baselines: BaselineResult[];
  pareto?: ParetoResult;
}

/**
 * Plans a model on a cluster: the exact planner for pipelines (one device per stage), then (unless
 * `replicas: false`) the exact search over cut points and replica groups seeded with that pipeline, keeping a
 * replicated plan only when it is strictly better on the objective; local splits over core clusters for a
 * pipeline, the baselines priced beside it, and (on request) the Pareto front of pipelines. Throws a
 * CleaveError with code INFEASIBLE explaining which constraint binds when nothing fits.
 */
export function makePlan(req: PlanRequest): PlanOutcome {
  const order = req.order ?? choosePartitionOrder(req.model);
  const built = buildProblem(req.model, order, req.cluster, req.cost);
  const problem = req.transformProblem ? req.transformProblem(built) : built;
  const constraints = req.constraints ?? {};
  const rc = resolveConstraints(problem, constraints);
  const t0 = performance.now();
  // The baselines are priced beside the plan anyway; the best of them seeds the exact search.
  const pipelineBaselines = runBaselines(problem, rc, req.objective);
  const exact = planExact(problem, {
    objective: req.objective,
    constraints: rc,
    timeLimitMs: req.timeLimitMs,
    incumbent: bestBaseline(problem, rc, req.objective, pipelineBaselines),
  });
  let replicaSearch: ReplicaPlanResult | undefined;
  let replicated: PlanOutcome["replicated"];
  // A better pipeline from the replica search (it prices co-run hosts exactly), kept as a pipeline.
  let betterPipeline: Candidate | undefined;
  // A replicated plan is a mixture of pipelines (each request takes one device per stage), so its latency and
  // energy are a share-weighted mean of pipelines' and every per-request constraint holds on its best path:
  // only a throughput objective or constraint, or a cap on link bytes (a mean over paths), can favour replicas.
  const replicasCanHelp =
    req.objective === "throughput" ||
    rc.maxBottleneck < Number.POSITIVE_INFINITY ||
    rc.maxLinkBytes < Number.POSITIVE_INFINITY;
  if (req.replicas !== false && replicasCanHelp) {
    const left =
      req.timeLimitMs !== undefined
        ? Math.max(0, req.timeLimitMs - (performance.now() - t0))
        : REPLICA_TIME_LIMIT_MS;
    replicaSearch = planReplicas(problem, {
      objective: req.objective,
      constraints: rc,
      ...(exact.candidate ? { incumbent: asReplicaCandidate(exact.candidate) } : {}),
      timeLimitMs: left,
    });
    const r = replicaSearch;
    const pipelineValue = exact.candidate
      ? objectiveValue(evaluate(problem, exact.candidate, rc), req.objective)
      : Number.POSITIVE_INFINITY;
    // Strictly better only: a pipeline keeps its latency tie-break and local splits.
    if (r.candidate && r.evaluation && r.value < pipelineValue * (1 - 1e-9)) {
      betterPipeline = asPipelineCandidate(r.candidate);
      if (!betterPipeline) replicated = { candidate: r.candidate, evaluation: r.evaluation };
    }
  }
  if (!exact.candidate && !replicated && !betterPipeline) {
    const why = explainInfeasible(problem, constraints);
    throw new CleaveError(
      "INFEASIBLE",
      `no plan of ${req.modelPath} on ${req.cluster.name} fits: ${why.lines.join("; ")}`,
      { file: req.cluster.source },
    );
  }
  const candidate = betterPipeline ?? exact.candidate;
  let evaluation: Evaluation | undefined;
  let local: LocalSplit[] = [];
  if (candidate) {
    const flat = evaluate(problem, candidate, rc);
    local =
      req.hierarchical === false || replicated
        ? []
        : localSplits(problem, candidate, flat, req.objective, rc);
    evaluation = applyLocal(flat, local);
  }
  const baselines = [...pipelineBaselines, ...runReplicaBaselines(problem, rc)];
  let pareto: ParetoResult | undefined;
  if (req.pareto) {
    const seeds = baselines.filter((b) => b.feasible && b.candidate).map((b) => b.candidate!);
    pareto = paretoFront(problem, {
      constraints: rc,
      seeds,
      ...(exact.exact && candidate && !replicated ? { known: { [req.objective]: candidate } } : {}),
    });
  }
  const chosen: Chosen = replicated
    ? { kind: "replicas", ...replicated }
    : { kind: "pipeline", candidate: candidate!, evaluation: evaluation! };
  const plan = toPlanFile(
    req,
    problem,
    order,
    chosen,
    exact,
    replicaSearch,
    betterPipeline !== undefined,
    local,
    baselines,
    pareto,
  );
  return {
    plan,
    problem,
    order,
    ...(candidate ? { candidate } : {}),
    ...(evaluation ? { evaluation } : {}),
    ...(replicated ? { replicated } : {}),
    exact,
    ...(replicaSearch ? { replicaSearch } : {}),
    local,
    baselines,
    pareto,
  };
}

/** The plan written: a pipeline (local splits applied) or a replicated plan. */
type Chosen =
  | { kind: "pipeline"; candidate: Candidate; evaluation: Evaluation }
  | { kind: "replicas"; candidate: ReplicaCandidate; evaluation: ReplicaEvaluation };

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
  chosen: Chosen,
  exact: ExactResult,
  replicaSearch: ReplicaPlanResult | undefined,
  fromReplicaSearch: boolean,
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
  const nodesOf = (start: number, end: number) =>
    order.nodes.slice(start, end).map((i) => graph.nodes[i].name);
  const stages: PlanStage[] =
    chosen.kind === "pipeline"
      ? pipelineStages(chosen.candidate, chosen.evaluation, local, name, nodesOf, crossing)
      : replicaStages(chosen.candidate, chosen.evaluation, name, nodesOf, crossing);
  const S = stages.length;
  const transfers =
    chosen.kind === "pipeline"
      ? chosen.evaluation.transfers.filter((t) => t.from !== t.to && t.bytes > 0)
      : chosen.evaluation.transfers;
  const links: PlanLink[] = transfers.map((t) => ({
    from: name(t.from),
    to: name(t.to),
    fromStage: t.boundary - 1,
    toStage: t.boundary === S ? S : t.boundary,
    link: t.link >= 0 ? p.links[t.link].name : "none",
    bytes: t.bytes,
    time: t.time,
    energy: t.energy,
    ...("fraction" in t && typeof t.fraction === "number" && t.fraction !== 1 ? { share: t.fraction } : {}),
  }));
  const ev = chosen.evaluation;
  const planBaselines: PlanBaseline[] = baselines.map((b) => {
    const e = b.evaluation ?? b.replicaEvaluation;
    let stagesOf: PlanBaseline["stages"] = [];
    if (b.replicas)
      stagesOf = b.replicas.stages.map((s) => ({
        device: name(s.devices[0]),
        nodes: s.end - s.start,
        ...(s.devices.length > 1 ? { replicas: s.devices.map(name) } : {}),
      }));
    else if (b.candidate)
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
    if (stagesOf.length === 1 && !stagesOf[0].replicas) out.singleDevice = stagesOf[0].device;
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
    planner: plannerSummary(
      chosen.kind === "replicas" || fromReplicaSearch,
      exact,
      replicaSearch,
      req.objective,
      req.replicas !== false,
    ),
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

/** How the plan was found: which search, whether it is proven optimal over the space searched, its effort. */
function plannerSummary(
  fromReplicaSearch: boolean,
  exact: ExactResult,
  r: ReplicaPlanResult | undefined,
  objective: Objective,
  replicas: boolean,
): Plan["planner"] {
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  const labels = exact.stats.labels + (r?.stats.labels ?? 0);
  const ms = exact.stats.ms + (r?.stats.ms ?? 0);
  if (!r) {
    // Without a throughput objective or constraint the pipeline optimum is optimal over replica groups too.
    const over = replicas
      ? "exact over replica groups (the pipeline optimum; replicas cannot help here)"
      : "exact (one device per stage)";
    return {
      method: exact.exact ? over : "best found (budget reached)",
      exact: exact.exact,
      lowerBound: finite(exact.lowerBound),
      labels,
      ms,
    };
  }
  // The replica search covers pipelines too, seeded with the pipeline planner's plan: when it completes, the
  // plan is optimal over every cut and replica group, whichever search found it.
  const found = fromReplicaSearch ? "replica-group search" : "pipeline search";
  if (r.exact)
    return {
      method: `exact over replica groups (found by the ${found})`,
      exact: true,
      lowerBound: finite(r.value),
      labels,
      ms,
    };
  // For latency and energy a replicated plan is a mixture of pipelines (each request takes one device per
  // stage, and its figures are the share-weighted mean of those paths), so the pipeline search's proven bound
  // holds over replica groups too; when the plan meets it, the plan is optimal.
  const bound = objective === "throughput" ? r.lowerBound : Math.max(r.lowerBound, exact.lowerBound);
  if (Number.isFinite(bound) && bound >= r.value * (1 - 1e-9))
    return {
      method: `exact over replica groups (found by the ${found}; proven by the pipeline bound)`,
      exact: true,
      lowerBound: finite(r.value),
      labels,
      ms,
    };
  return {
    method: `best found by the ${found} (replica search limited)`,
    exact: false,
    lowerBound: finite(Math.min(bound, r.value)),
    labels,
    ms,
    ...(r.limited ? { limited: r.limited } : {}),
  };
}

function pipelineStages(
  candidate: Candidate,
  ev: Evaluation,
  local: LocalSplit[],
  name: (d: number) => string,
  nodesOf: (start: number, end: number) => string[],
  crossing: (b: number) => string[],
): PlanStage[] {
  return candidate.stages.map((s, k) => {
    const st: PlanStage = {
      index: k,
      device: name(s.device),
      start: s.start,
      end: s.end,
      nodes: nodesOf(s.start, s.end),
      inputs: crossing(s.start),
      latency: ev.stages[k].time,
      memory: ev.stages[k].memory,
      energy: ev.stages[k].energy,
    };
    if (ev.stages[k].period !== undefined) st.period = ev.stages[k].period;
    if (ev.stages[k].coRun !== undefined) st.coRun = ev.stages[k].coRun;
    if (ev.stages[k].inputFeed !== undefined) st.inputFeed = ev.stages[k].inputFeed;
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
}

function replicaStages(
  candidate: ReplicaCandidate,
  ev: ReplicaEvaluation,
  name: (d: number) => string,
  nodesOf: (start: number, end: number) => string[],
  crossing: (b: number) => string[],
): PlanStage[] {
  return candidate.stages.map((s, k) => {
    const g = ev.stages[k];
    const st: PlanStage = {
      index: k,
      device: name(s.devices[0]),
      start: s.start,
      end: s.end,
      nodes: nodesOf(s.start, s.end),
      inputs: crossing(s.start),
      latency: g.time,
      memory: g.memory,
      energy: g.energy,
    };
    if (g.replicas.length > 1) {
      st.period = g.period;
      st.replicas = g.replicas.map((r) => ({
        device: name(r.device),
        share: r.share,
        latency: r.time,
        period: r.period,
        memory: r.memory,
        energy: r.energy,
        ...(r.coRun !== undefined ? { coRun: r.coRun } : {}),
      }));
    } else {
      const r = g.replicas[0];
      if (r.period !== r.time) st.period = r.period;
      if (r.coRun !== undefined) st.coRun = r.coRun;
    }
    if (g.inputFeed !== undefined) st.inputFeed = g.inputFeed;
    return st;
  });
}
