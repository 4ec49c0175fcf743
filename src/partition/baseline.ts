import type { Objective, ResolvedConstraints } from "./constraints.js";
import {
  type AssignmentCandidate,
  type Candidate,
  type Evaluation,
  evaluate,
  evaluateAssignment,
  objectiveValue,
} from "./evaluate.js";
import type { ReplicaCandidate, ReplicaEvaluation } from "./evaluate-replicas.js";
import type { PlanProblem } from "./problem.js";

/** A baseline split, priced by the same evaluator as plans. */
export interface BaselineResult {
  /** Short name ("single", "neurosurgeon", "dads", "equal-layers", "memory-proportional", "compute-proportional"). */
  name: string;
  /** One line on what it does. */
  description: string;
  /** The split: contiguous in the partition order, or (DADS) any predecessor-closed assignment. */
  candidate?: Candidate;
  assignment?: AssignmentCandidate;
  evaluation?: Evaluation;
  /** A split with replicated stages (data parallelism), priced by the replica evaluator into `replicaEvaluation`. */
  replicas?: ReplicaCandidate;
  replicaEvaluation?: ReplicaEvaluation;
  feasible: boolean;
  /** Why it is infeasible (or does not apply). */
  reason?: string;
}

/** A baseline that does not apply to this problem. */
export function notApplicable(name: string, description: string, reason: string): BaselineResult {
  return { name, description, feasible: false, reason };
}

/** Prices a candidate into a baseline result; infeasible ones say why (the first violation). */
export function pricedBaseline(
  p: PlanProblem,
  rc: ResolvedConstraints,
  name: string,
  description: string,
  split: { candidate: Candidate } | { assignment: AssignmentCandidate },
): BaselineResult {
  const evaluation =
    "candidate" in split ? evaluate(p, split.candidate, rc) : evaluateAssignment(p, split.assignment, rc);
  const out: BaselineResult = { name, description, ...split, evaluation, feasible: evaluation.feasible };
  if (!evaluation.feasible) out.reason = evaluation.violations[0]?.message ?? "infeasible";
  return out;
}

/**
 * The best of several priced options for an objective: the best feasible one, else the one with the fewest
 * violations (so its reason is the most telling), else a not-applicable result.
 */
export function bestOf(
  options: BaselineResult[],
  objective: Objective,
  fallback: BaselineResult,
): BaselineResult {
  let best: BaselineResult | undefined;
  const key = (b: BaselineResult) => [
    b.feasible ? 0 : 1,
    b.evaluation?.violations.length ?? Number.POSITIVE_INFINITY,
    b.evaluation ? objectiveValue(b.evaluation, objective) : Number.POSITIVE_INFINITY,
  ];
  for (const o of options) {
    if (!best) {
      best = o;
      continue;
    }
    const a = key(o);
    const b = key(best);
    if (a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])))) best = o;
  }
  return best ?? fallback;
}

/** Devices that may run stages, in problem order. */
export function allowedDevices(p: PlanProblem, rc: ResolvedConstraints): number[] {
  return p.devices.map((_, d) => d).filter((d) => rc.allowed[d]);
}

/**
 * Boundaries splitting positions into `shares.length` contiguous stages whose summed `weight` is as close as
 * possible to each share of the total (shares need not sum to 1); every stage gets at least one position.
 */
export function proportionalCuts(weight: ArrayLike<number>, shares: readonly number[]): number[] {
  const n = weight.length;
  const k = shares.length;
  const prefix = new Float64Array(n + 1);
  for (let q = 0; q < n; q++) prefix[q + 1] = prefix[q] + weight[q];
  const shareSum = shares.reduce((a, b) => a + b, 0);
  const cuts: number[] = [];
  let cum = 0;
  for (let s = 0; s < k - 1; s++) {
    cum += shares[s];
    const target = (prefix[n] * cum) / shareSum;
    const lo = (cuts[s - 1] ?? 0) + 1;
    const hi = n - (k - 1 - s);
    let best = lo;
    for (let b = lo + 1; b <= hi; b++)
      if (Math.abs(prefix[b] - target) < Math.abs(prefix[best] - target)) best = b;
    cuts.push(best);
  }
  return cuts;
}
