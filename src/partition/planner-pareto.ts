import type { ResolvedConstraints } from "./constraints.js";
import { type Candidate, evaluate } from "./evaluate.js";
import { type FrontPoint, search } from "./label-search.js";
import { dominatesVec, nsga2 } from "./nsga2.js";
import { planExact } from "./planner-exact.js";
import { hasPipelineCosts, type PlanProblem } from "./problem.js";

/** A point of the front: latency s, throughput 1/s (and its bottleneck s), energy J, and the plan. */
export interface ParetoPoint {
  latency: number;
  throughput: number;
  bottleneck: number;
  energy: number;
  candidate: Candidate;
}

/** Options for {@link paretoFront}. */
export interface ParetoOptions {
  constraints: ResolvedConstraints;
  /** Labels the exact front search may create before falling back to NSGA-II (default 5e4). */
  maxLabels?: number;
  /** Wall-clock limit of the NSGA-II fallback, ms (default 2000). */
  timeLimitMs?: number;
  /** Time limit of each single-objective search, ms (default 3000); past it its best plan seeds the front. */
  optimumTimeLimitMs?: number;
  /** Single-objective optima already known (e.g. the plan's own), not searched again. */
  known?: Partial<Record<"latency" | "throughput" | "energy", Candidate>>;
  /** More plans to seed the search with (e.g. baselines). */
  seeds?: readonly Candidate[];
  /** NSGA-II seed (default 1). */
  seed?: number;
}

/** The front and how it was found. */
export interface ParetoResult {
  /** Non-dominated feasible plans, by increasing latency. */
  points: ParetoPoint[];
  /**
   * "exact": the label search finished, so this is the whole front (seeds only prune, they are real plans);
   * "nsga2": an approximation that still holds the optima found.
   */
  method: "exact" | "nsga2";
  /** The single-objective optima the front was seeded with (each is on it or tied by a point on it). */
  optima: { latency?: ParetoPoint; throughput?: ParetoPoint; energy?: ParetoPoint };
  stats: { labels: number; generations: number; evaluations: number; ms: number };
}

/**
 * The Pareto front over latency, throughput and energy. First the three single-objective optima (exact
 * planner); then the multi-objective label search (vector dominance, pruned by the front), which is exact
 * when it finishes within `maxLabels`; otherwise NSGA-II seeded with the optima, the partial front and
 * `seeds`. The result never holds a dominated point, and always holds each optimum or a point tied with it.
 */
export function paretoFront(p: PlanProblem, opts: ParetoOptions): ParetoResult {
  const t0 = performance.now();
  const rc = opts.constraints;
  const point = (c: Candidate): ParetoPoint => {
    const e = evaluate(p, c, rc);
    return {
      latency: e.latency,
      throughput: e.throughput,
      bottleneck: e.bottleneck,
      energy: e.energy,
      candidate: c,
    };
  };
  const optima: ParetoResult["optima"] = {};
  for (const objective of ["latency", "throughput", "energy"] as const) {
    const known = opts.known?.[objective];
    if (known) {
      optima[objective] = point(known);
      continue;
    }
    const r = planExact(p, { objective, constraints: rc, timeLimitMs: opts.optimumTimeLimitMs ?? 3000 });
    if (r.candidate) optima[objective] = point(r.candidate);
  }
  const seeded = Object.values(optima).filter((x): x is ParetoPoint => x !== undefined);
  const stats = { labels: 0, generations: 0, evaluations: 0, ms: 0 };
  if (seeded.length === 0)
    return { points: [], method: "exact", optima, stats: { ...stats, ms: performance.now() - t0 } };

  const front: FrontPoint[] = [];
  for (const s of seeded) addToFront(front, s);
  const budget = { labels: opts.maxLabels ?? 5e4, deadline: Number.POSITIVE_INFINITY };
  const r = search(p, "pareto", rc, { budget, front });
  stats.labels = r.stats.labels;
  let method: ParetoResult["method"] = "exact";
  let points = front.map((f) => point(f.candidate));
  if (!r.exact) {
    method = "nsga2";
    const seeds = [...points.map((x) => x.candidate), ...(opts.seeds ?? [])];
    const ga = nsga2(p, rc, seeds, { timeLimitMs: opts.timeLimitMs ?? 2000, seed: opts.seed });
    stats.generations = ga.generations;
    stats.evaluations = ga.evaluations;
    const all = [...points, ...ga.archive.map((s) => point(s.candidate))];
    points = [];
    const pts: FrontPoint[] = [];
    for (const x of all) if (evaluate(p, x.candidate, rc).feasible) addToFront(pts, x);
    points = pts.map((f) => point(f.candidate));
  }
  if (hasPipelineCosts(p)) {
    // The search priced throughput without co-run slowdown; priced with it, some points may now be dominated.
    const pts: FrontPoint[] = [];
    for (const x of points) addToFront(pts, x);
    points = pts.map((f) => point(f.candidate));
  }
  points.sort((a, b) => a.latency - b.latency || a.bottleneck - b.bottleneck || a.energy - b.energy);
  return { points, method, optima, stats: { ...stats, ms: performance.now() - t0 } };
}

/** Adds a point unless one no worse in all three is there; drops the points it dominates. */
function addToFront(
  front: FrontPoint[],
  x: { latency: number; bottleneck: number; energy: number; candidate: Candidate },
) {
  const v = [x.latency, x.bottleneck, x.energy];
  for (const f of front) {
    const w = [f.latency, f.bottleneck, f.energy];
    if (dominatesVec(w, v) || w.every((a, i) => a === v[i])) return;
  }
  let k = 0;
  for (const f of front) if (!dominatesVec(v, [f.latency, f.bottleneck, f.energy])) front[k++] = f;
  front.length = k;
  front.push({ latency: x.latency, bottleneck: x.bottleneck, energy: x.energy, candidate: x.candidate });
}
