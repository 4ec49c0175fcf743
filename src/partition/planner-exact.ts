import type { Objective, ResolvedConstraints } from "./constraints.js";
import { deviceSet, setWords } from "./device-set.js";
import type { BaselineResult } from "./baseline.js";
import { runBaselines } from "./baselines.js";
import { type Candidate, evaluate, objectiveValue } from "./evaluate.js";
import { greedyBottleneck } from "./greedy-bottleneck.js";
import { hasPipelineCosts, type PlanProblem, pipelinedProblem } from "./problem.js";
import { type Budget, prepareBounds, type SearchBounds, type SearchStats, search } from "./label-search.js";

/** Options for {@link planExact}. */
export interface ExactOptions {
  objective: Objective;
  constraints: ResolvedConstraints;
  /** A known feasible plan and its objective value, to prune with from the start. */
  incumbent?: { candidate: Candidate; value: number };
  /**
   * Throughput only: among plans with the optimal bottleneck, return one of least latency (a second pass).
   * Default true.
   */
  tieBreak?: boolean;
  /** Label budget of the throughput tie-break pass (default 1e5; it also stops after as long as the first pass took, at least 250 ms). */
  tieBreakLabels?: number;
  /** Give up proving optimality after this many labels (default 5e6) or milliseconds (default none). */
  maxLabels?: number;
  timeLimitMs?: number;
}

/** Counters of a search. */
export type ExactStats = SearchStats;

/** Result of {@link planExact}: the optimum (undefined when nothing is feasible) and whether it is proven. */
export interface ExactResult {
  candidate?: Candidate;
  /** Objective value: latency s, bottleneck s (1 / throughput), or energy J. */
  value: number;
  /**
   * True when the search completed, so `candidate` is optimal (or none exists). When a budget ran out, the
   * candidate is the best found (by a beam search when the exact one found none) and `lowerBound` says how
   * far from optimal it can be.
   */
  exact: boolean;
  /** Proven lower bound on the optimum (equal to `value` when exact). */
  lowerBound: number;
  /** Throughput with tie-break: whether the plan is proven of least latency among the throughput optima. */
  tieBreakExact?: boolean;
  stats: ExactStats;
}

/**
 * Exact planner for contiguous stages, each on its own device, devices in any order. Label-setting dynamic
 * programme over (boundary, last device): a label is a partial plan with the set of devices it used and its
 * costs so far (latency, energy, bottleneck and per-link busy time, as the objective and constraints need);
 * a label is dropped when another at the same node used a subset of its devices and is no worse in every
 * tracked cost (so no completion of it can do better), or when its cost plus a relaxed completion bound
 * reaches the best complete plan. Interchangeable devices (same `type`) are tried in index order only, which
 * the symmetry makes exact. Memory, links, device order, allowed devices, maximum latency/energy/link bytes
 * and minimum throughput are enforced exactly. Any number of devices.
 */
export function planExact(p: PlanProblem, opts: ExactOptions): ExactResult {
  if (opts.objective !== "throughput" || !hasPipelineCosts(p)) return planExactOn(p, opts);
  return coRunThroughput(p, opts);
}

/**
 * Throughput when devices slow each other down on a shared host: every plan of two or more stages is searched
 * on the problem with those devices' stage times multiplied by their co-run factor and the coordinator's share
 * of their CPU added (exact for plans whose
 * co-hosted devices all run beside each other, as on one machine; conservative for a plan that uses only one
 * device of a host), the plan found is priced on the real problem, and one-stage plans, which run alone, are
 * compared at their own speed.
 */
function coRunThroughput(p: PlanProblem, opts: ExactOptions): ExactResult {
  const t0 = performance.now();
  const rc = opts.constraints;
  const piped = planExactOn(pipelinedProblem(p), { ...opts, incumbent: undefined });
  let best: { candidate?: Candidate; value: number } = { value: Number.POSITIVE_INFINITY };
  if (piped.candidate) {
    const ev = evaluate(p, piped.candidate, rc);
    if (ev.feasible) best = { candidate: piped.candidate, value: ev.bottleneck };
  }
  for (let d = 0; d < p.devices.length; d++) {
    const one: Candidate = { stages: [{ device: d, start: 0, end: p.n }] };
    const ev = evaluate(p, one, rc);
    if (ev.feasible && ev.bottleneck < best.value) best = { candidate: one, value: ev.bottleneck };
  }
  // A plan using one device of a host pays neither the co-run factor nor the coordinator's share there.
  const maxF = Math.max(...p.devices.map((d) => d.coRun ?? 1));
  const maxCoord = Math.max(...p.devices.map((d) => (d.host !== undefined ? (d.coordinatorCpu ?? 0) : 0)));
  const lowerBound = piped.exact
    ? best.value
    : Math.min(best.value, Math.max(0, piped.lowerBound - maxCoord) / maxF);
  return {
    ...best,
    exact: piped.exact,
    lowerBound,
    ...(piped.tieBreakExact !== undefined ? { tieBreakExact: piped.tieBreakExact } : {}),
    stats: { ...piped.stats, ms: performance.now() - t0 },
  };
}

function planExactOn(p: PlanProblem, opts: ExactOptions): ExactResult {
  const t0 = performance.now();
  const budget: Budget = {
    labels: opts.maxLabels ?? 5e6,
    deadline: opts.timeLimitMs !== undefined ? t0 + opts.timeLimitMs : Number.POSITIVE_INFINITY,
  };
  const done = (r: ExactResult): ExactResult => ({ ...r, stats: { ...r.stats, ms: performance.now() - t0 } });
  const rc = opts.constraints;
  // The best baseline seeds the search: it prunes from the start, and a search cut short by its budget
  // still returns no worse a plan than every baseline.
  const incumbent = opts.incumbent ?? bestBaseline(p, rc, opts.objective);
  let first =
    opts.objective === "throughput"
      ? throughputSearch(p, rc, budget, incumbent)
      : search(p, opts.objective, rc, { incumbent, budget });
  if (!first.exact) {
    // Past the deadline, one more second at most for a better plan than the search's.
    const h = beamPlan(
      p,
      opts.objective,
      rc,
      prepareBounds(p, opts.objective, rc),
      first.lowerBound,
      Math.max(budget.deadline, performance.now()) + 1000,
    );
    first = {
      ...first,
      ...(h.candidate && !(h.value >= first.value) ? { candidate: h.candidate, value: h.value } : {}),
      stats: addStats(first.stats, h.stats),
    };
  }
  if (opts.objective !== "throughput" || opts.tieBreak === false || !first.candidate || !first.exact)
    return done(first);
  // Second pass: least latency among plans whose bottleneck is within rounding of the optimum, starting from
  // the first pass's plan as incumbent. Its budget is bounded: the bottleneck is proven
  // optimal either way; `tieBreakExact` says whether the latency among such plans is too.
  const rc2 = { ...rc, maxBottleneck: Math.min(rc.maxBottleneck, first.value * (1 + 1e-9)) };
  // Without the fractional-assignment bound: under the optimal bottleneck as a limit it pruned nothing
  // (EfficientNet-B0 on 64 and ViT-Tiny on 8 distinct devices: the same labels) and cost 10-20% of the pass.
  const { lp: _lp, ...bounds2 } = prepareBounds(p, "latency", rc2);
  // The incumbent's latency, a hair raised, is the value to beat: the pass then returns the first plan of
  // least latency that its order reaches, whichever plan the first pass found (tied plans may differ in
  // energy, and the Pareto front keeps the better). A beam search for a stronger incumbent was tried: it
  // halved the labels on ViT-Tiny (8 distinct devices) but cost 2 s on EfficientNet-B0 (64 distinct), where
  // the pass needs few labels, and cut short it finds nothing (its plans complete only at the end).
  const raised = (v: number) => v * (1 + 1e-12);
  const inc = { candidate: first.candidate, value: raised(evaluate(p, first.candidate, rc2).latency) };
  // At most as long again as the first pass took (and 250 ms): the secondary criterion must not dominate.
  const elapsed = performance.now() - t0;
  const tieBudget = {
    labels: Math.min(budget.labels, opts.tieBreakLabels ?? 1e5),
    deadline: Math.min(budget.deadline, performance.now() + Math.max(250, elapsed)),
  };
  const second = search(p, "latency", rc2, { budget: tieBudget, incumbent: inc, bounds: bounds2 });
  const stats = addStats(first.stats, second.stats);
  return done({ ...first, candidate: second.candidate ?? inc.candidate, tieBreakExact: second.exact, stats });
}

/**
 * The feasible baseline plan (contiguous ones) of least objective value, if any: of `results` when given
 * (baselines already run on this problem), else of a fresh run. Use it as {@link ExactOptions.incumbent}.
 */
export function bestBaseline(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
  results: readonly BaselineResult[] = runBaselines(p, rc, objective),
): { candidate: Candidate; value: number } | undefined {
  let best: { candidate: Candidate; value: number } | undefined;
  for (const b of results) {
    if (!b.feasible || !b.candidate) continue;
    const ev = evaluate(p, b.candidate, rc);
    const v = objectiveValue(ev, objective);
    if (ev.feasible && (!best || v < best.value)) best = { candidate: b.candidate, value: v };
  }
  return best;
}

function addStats(a: ExactStats, b: ExactStats): ExactStats {
  return {
    labels: a.labels + b.labels,
    dominated: a.dominated + b.dominated,
    pruned: a.pruned + b.pruned,
    ms: 0,
  };
}

/**
 * A good plan fast, not proven: beam searches (at each node only the few labels of least bound are kept)
 * against rising targets above `floor` (a proven lower bound), so that stages stay short and the searches cheap.
 * Stops at `deadline` (performance.now() ms) with what it found.
 */
function beamPlan(
  p: PlanProblem,
  objective: Objective,
  rc: ResolvedConstraints,
  bounds: SearchBounds,
  floor: number,
  deadline = Number.POSITIVE_INFINITY,
): { candidate?: Candidate; value: number; stats: ExactStats } {
  const free = { labels: Number.POSITIVE_INFINITY, deadline };
  let stats: ExactStats = { labels: 0, dominated: 0, pruned: 0, ms: 0 };
  for (let delta = 0.02; ; delta *= 2) {
    const target = delta > 1 || !(floor > 0 && Number.isFinite(floor)) ? undefined : floor * (1 + delta);
    const r = search(p, objective, rc, { budget: free, beam: 8, target, bounds, floor });
    stats = addStats(stats, r.stats);
    if (r.candidate || target === undefined || !r.exact)
      return { candidate: r.candidate, value: r.value, stats };
  }
}

/**
 * Throughput search. The search prunes what cannot beat its incumbent, and without a good one nearly nothing
 * is pruned (complete plans appear only late in the sweep). So: a lower bound at the root (relaxed DP,
 * capacity and fractional-assignment bounds); a beam search for a good plan, which is optimal at once when it
 * meets the bound; then exact searches with rising targets (1%, 2%, 4%, ... above the bound, below the beam's
 * plan) as stand-in incumbents. A run that finds nothing proves the optimum is at least its target; the run
 * that finds a plan returns the optimum, since that lies below its target.
 */
function throughputSearch(
  p: PlanProblem,
  rc: ResolvedConstraints,
  budget: Budget,
  given?: { candidate: Candidate; value: number },
): ExactResult {
  const bounds = prepareBounds(p, "throughput", rc);
  const allowed = deviceSet(
    p.devices.map((_, d) => d).filter((d) => rc.allowed[d]),
    setWords(p.devices.length),
  );
  const root = Math.max(
    bounds.Rbn?.start ?? 0,
    bounds.cap?.at(0, allowed) ?? 0,
    bounds.lp?.at(0, allowed) ?? 0,
  );
  const inf = Number.POSITIVE_INFINITY;
  let total: ExactStats = { labels: 0, dominated: 0, pruned: 0, ms: 0 };
  if (!Number.isFinite(root) || root > rc.maxBottleneck)
    return { value: inf, exact: true, lowerBound: inf, stats: total };
  // An incumbent: the better of the given plan and the greedy bisection (milliseconds; often optimal, and
  // then proven so by the root bound at once), else the beam search (seconds on large problems).
  const greedy = greedyBottleneck(p, rc, root);
  let inc = given && !(greedy && greedy.value < given.value) ? given : greedy;
  if (!inc) {
    const h = beamPlan(p, "throughput", rc, bounds, root, budget.deadline);
    total = addStats(total, h.stats);
    if (h.candidate) inc = { candidate: h.candidate, value: h.value };
  }
  if (inc && inc.value <= root) return { ...inc, exact: true, lowerBound: root, stats: total };
  let proven = root;
  for (let delta = 0.01; ; delta *= 2) {
    let target: number | undefined = root * (1 + delta);
    if (delta > 1 || target > rc.maxBottleneck || (inc && target >= inc.value)) target = undefined;
    const r = search(p, "throughput", rc, {
      budget,
      target,
      bounds,
      floor: proven,
      incumbent: target ? undefined : inc,
    });
    total = addStats(total, r.stats);
    if (!r.exact) {
      const best = r.candidate ? { candidate: r.candidate, value: r.value } : inc;
      return {
        ...(best ?? { value: inf }),
        exact: false,
        lowerBound: Math.max(proven, r.lowerBound),
        stats: total,
      };
    }
    if (r.candidate || target === undefined) return { ...r, stats: total };
    proven = target;
  }
}
