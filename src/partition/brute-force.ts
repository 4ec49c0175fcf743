import type { Objective, ResolvedConstraints } from "./constraints.js";
import { type Candidate, type Evaluation, evaluate, objectiveValue } from "./evaluate.js";
import { evaluateReplicas, type ReplicaCandidate, type ReplicaEvaluation } from "./evaluate-replicas.js";
import type { PlanProblem } from "./problem.js";

/** A candidate with its price. */
export interface Priced {
  candidate: Candidate;
  evaluation: Evaluation;
}

/**
 * Every contiguous candidate of a problem (every set of cuts, every sequence of distinct allowed devices),
 * priced by {@link evaluate}. Exponential: for tests on small problems only (n <= 12, few devices).
 */
export function* allCandidates(p: PlanProblem, rc: ResolvedConstraints): Generator<Priced> {
  const { n } = p;
  if (n > 16) throw new RangeError(`brute force is for small problems (n <= 16), got n = ${n}`);
  const devices = p.devices.map((_, d) => d).filter((d) => rc.allowed[d]);
  for (let mask = 0; mask < 1 << (n - 1); mask++) {
    const cuts: number[] = [];
    for (let b = 1; b < n; b++) if (mask & (1 << (b - 1))) cuts.push(b);
    const k = cuts.length + 1;
    if (k > devices.length) continue;
    const bounds = [0, ...cuts, n];
    for (const seq of permutations(devices, k)) {
      const candidate: Candidate = {
        stages: seq.map((device, s) => ({ device, start: bounds[s], end: bounds[s + 1] })),
      };
      yield { candidate, evaluation: evaluate(p, candidate, rc) };
    }
  }
}

function* permutations(items: readonly number[], k: number, prefix: number[] = []): Generator<number[]> {
  if (prefix.length === k) {
    yield [...prefix];
    return;
  }
  for (const x of items) {
    if (prefix.includes(x)) continue;
    prefix.push(x);
    yield* permutations(items, k, prefix);
    prefix.pop();
  }
}

/** The best feasible candidate by brute force, or undefined when none is feasible. */
export function bruteForce(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
): Priced | undefined {
  let best: Priced | undefined;
  for (const c of allCandidates(p, rc)) {
    if (!c.evaluation.feasible) continue;
    if (!best || objectiveValue(c.evaluation, objective) < objectiveValue(best.evaluation, objective))
      best = c;
  }
  return best;
}

/** A replicated candidate with its price. */
export interface PricedReplicas {
  candidate: ReplicaCandidate;
  evaluation: ReplicaEvaluation;
}

/**
 * Every replicated candidate of a problem: every ordered sequence of disjoint non-empty groups of allowed
 * devices times every set of cuts, priced by {@link evaluateReplicas}. Exponential: tests only (n <= 10, a few
 * devices).
 */
export function* allReplicaCandidates(p: PlanProblem, rc: ResolvedConstraints): Generator<PricedReplicas> {
  const { n } = p;
  if (n > 12) throw new RangeError(`brute force is for small problems (n <= 12), got n = ${n}`);
  const devices = p.devices.map((_, d) => d).filter((d) => rc.allowed[d]);
  if (devices.length > 6)
    throw new RangeError(`brute force is for a few devices (<= 6), got ${devices.length}`);
  const sequences: number[][][] = [];
  const grow = (free: number[], seq: number[][]) => {
    if (seq.length > 0) sequences.push(seq.map((g) => [...g]));
    for (let m = 1; m < 1 << free.length; m++) {
      const group = free.filter((_, i) => m & (1 << i));
      seq.push(group);
      grow(
        free.filter((_, i) => !(m & (1 << i))),
        seq,
      );
      seq.pop();
    }
  };
  grow(devices, []);
  for (let mask = 0; mask < 1 << (n - 1); mask++) {
    const cuts: number[] = [];
    for (let b = 1; b < n; b++) if (mask & (1 << (b - 1))) cuts.push(b);
    const bounds = [0, ...cuts, n];
    for (const seq of sequences) {
      if (seq.length !== cuts.length + 1) continue;
      const candidate: ReplicaCandidate = {
        stages: seq.map((group, s) => ({ devices: group, start: bounds[s], end: bounds[s + 1] })),
      };
      yield { candidate, evaluation: evaluateReplicas(p, candidate, rc) };
    }
  }
}

/** The best feasible replicated candidate by brute force, or undefined when none is feasible. */
export function bruteForceReplicas(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
): PricedReplicas | undefined {
  let best: PricedReplicas | undefined;
  for (const c of allReplicaCandidates(p, rc)) {
    if (!c.evaluation.feasible) continue;
    if (!best || objectiveValue(c.evaluation, objective) < objectiveValue(best.evaluation, objective))
      best = c;
  }
  return best;
}
