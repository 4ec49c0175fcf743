import type { Objective, ResolvedConstraints } from "./constraints.js";
import { type Candidate, type Evaluation, evaluate, objectiveValue } from "./evaluate.js";
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
