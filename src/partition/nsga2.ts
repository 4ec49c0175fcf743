import { seededRandom } from "../onnx/prng.js";
import type { ResolvedConstraints } from "./constraints.js";
import { type Candidate, type Evaluation, evaluate, type StageSpec } from "./evaluate.js";
import type { PlanProblem } from "./problem.js";

/** Options for {@link nsga2}. */
export interface Nsga2Options {
  /** Population size (default 80). */
  population?: number;
  /** Generations (default 300), cut short by `timeLimitMs`. */
  generations?: number;
  /** Wall-clock limit, ms (default 3000). */
  timeLimitMs?: number;
  seed?: number;
}

/** A priced candidate in objective space: latency s, bottleneck s, energy J; `violation` 0 when feasible. */
export interface Scored {
  candidate: Candidate;
  objectives: [number, number, number];
  violation: number;
}

/** Scores a candidate: objectives and a scalar violation (violations counted, plus their relative excess). */
export function score(p: PlanProblem, c: Candidate, rc: ResolvedConstraints): Scored {
  const ev: Evaluation = evaluate(p, c, rc, { memory: "fit" });
  let violation = 0;
  for (const v of ev.violations) {
    violation += 1;
    const limit =
      v.kind === "latency"
        ? rc.maxLatency
        : v.kind === "energy"
          ? rc.maxEnergy
          : v.kind === "throughput"
            ? 1 / rc.maxBottleneck
            : v.kind === "link-bytes"
              ? rc.maxLinkBytes
              : 0;
    if (limit > 0 && Number.isFinite(v.excess)) violation += Math.min(1, v.excess / limit);
  }
  return {
    candidate: c,
    objectives: [ev.latency, ev.bottleneck, ev.energy],
    violation,
  };
}

/** a dominates b: no worse in all objectives, better in one. */
export function dominatesVec(a: readonly number[], b: readonly number[]): boolean {
  let better = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) better = true;
  }
  return better;
}

/** Deb's constrained domination: feasible beats infeasible, less violation beats more, else Pareto. */
function cdom(a: Scored, b: Scored): boolean {
  if (a.violation === 0 && b.violation > 0) return true;
  if (a.violation > 0 || b.violation > 0) return a.violation < b.violation;
  return dominatesVec(a.objectives, b.objectives);
}

/** Fast non-dominated sorting: fronts of indices. */
function sortFronts(pop: readonly Scored[]): number[][] {
  const n = pop.length;
  const dominated: number[][] = Array.from({ length: n }, () => []);
  const count = new Int32Array(n);
  const fronts: number[][] = [[]];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (cdom(pop[i], pop[j])) {
        dominated[i].push(j);
        count[j]++;
      } else if (cdom(pop[j], pop[i])) {
        dominated[j].push(i);
        count[i]++;
      }
    }
  }
  for (let i = 0; i < n; i++) if (count[i] === 0) fronts[0].push(i);
  for (let f = 0; fronts[f].length > 0; f++) {
    const next: number[] = [];
    for (const i of fronts[f]) for (const j of dominated[i]) if (--count[j] === 0) next.push(j);
    fronts.push(next);
  }
  fronts.pop();
  return fronts;
}

function crowding(pop: readonly Scored[], front: readonly number[]): Map<number, number> {
  const dist = new Map<number, number>(front.map((i) => [i, 0]));
  for (let m = 0; m < 3; m++) {
    const sorted = [...front].sort((a, b) => pop[a].objectives[m] - pop[b].objectives[m]);
    const lo = pop[sorted[0]].objectives[m];
    const hi = pop[sorted[sorted.length - 1]].objectives[m];
    dist.set(sorted[0], Number.POSITIVE_INFINITY);
    dist.set(sorted[sorted.length - 1], Number.POSITIVE_INFINITY);
    if (!(hi > lo) || !Number.isFinite(hi - lo)) continue;
    for (let k = 1; k < sorted.length - 1; k++) {
      const d = (pop[sorted[k + 1]].objectives[m] - pop[sorted[k - 1]].objectives[m]) / (hi - lo);
      dist.set(sorted[k], dist.get(sorted[k])! + d);
    }
  }
  return dist;
}

/** A stable text key of a candidate (to skip duplicates). */
export function candidateKey(c: Candidate): string {
  return c.stages.map((s) => `${s.device}:${s.start}-${s.end}`).join(",");
}

/**
 * NSGA-II (Deb et al., 2002) over contiguous splits, as the automated-partitioning study uses: genomes are
 * stage lists (cuts and a distinct device per stage); mutation moves a cut, splits or merges stages,
 * replaces or swaps devices; crossover joins one parent's stages before a position with the other's after it
 * (duplicate devices repaired). Constraints by Deb's constrained domination. Returns every feasible
 * non-dominated candidate met during the run (an archive), seeds included.
 */
export function nsga2(
  p: PlanProblem,
  rc: ResolvedConstraints,
  seeds: readonly Candidate[],
  opts: Nsga2Options = {},
): { archive: Scored[]; generations: number; evaluations: number } {
  const rnd = seededRandom(opts.seed ?? 1);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const N = opts.population ?? 80;
  const deadline = performance.now() + (opts.timeLimitMs ?? 3000);
  const allowed = p.devices.map((_, d) => d).filter((d) => rc.allowed[d]);
  const { n } = p;
  let evaluations = 0;
  const archive = new Map<string, Scored>();
  const consider = (s: Scored) => {
    if (s.violation > 0) return;
    for (const a of archive.values())
      if (dominatesVec(a.objectives, s.objectives) || a.objectives.every((v, i) => v === s.objectives[i]))
        return;
    for (const [k, a] of archive) if (dominatesVec(s.objectives, a.objectives)) archive.delete(k);
    archive.set(candidateKey(s.candidate), s);
  };
  const scoreOf = (c: Candidate) => {
    evaluations++;
    const s = score(p, c, rc);
    consider(s);
    return s;
  };
  if (allowed.length === 0) return { archive: [], generations: 0, evaluations };

  const unused = (stages: readonly StageSpec[]) => allowed.filter((d) => !stages.some((s) => s.device === d));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)];

  const mutate = (c: Candidate): Candidate => {
    const st = c.stages.map((s) => ({ ...s }));
    const op = int(0, 4);
    if (op === 0 && st.length > 1) {
      const k = int(1, st.length - 1);
      const span = Math.max(1, Math.round(n / 20));
      const b = Math.min(st[k].end - 1, Math.max(st[k - 1].start + 1, st[k].start + int(-span, span)));
      st[k - 1].end = b;
      st[k].start = b;
    } else if (op === 1) {
      const free = unused(st);
      const k = int(0, st.length - 1);
      if (free.length > 0 && st[k].end - st[k].start >= 2) {
        const b = int(st[k].start + 1, st[k].end - 1);
        const d = pick(free);
        const left = rnd() < 0.5;
        const first = { device: left ? d : st[k].device, start: st[k].start, end: b };
        const second = { device: left ? st[k].device : d, start: b, end: st[k].end };
        st.splice(k, 1, first, second);
      }
    } else if (op === 2 && st.length > 1) {
      const k = int(1, st.length - 1);
      const device = rnd() < 0.5 ? st[k - 1].device : st[k].device;
      st.splice(k - 1, 2, { device, start: st[k - 1].start, end: st[k].end });
    } else if (op === 3) {
      const free = unused(st);
      if (free.length > 0) st[int(0, st.length - 1)].device = pick(free);
    } else if (st.length > 1) {
      const a = int(0, st.length - 1);
      const b = int(0, st.length - 1);
      [st[a].device, st[b].device] = [st[b].device, st[a].device];
    }
    return { stages: st };
  };

  const crossover = (a: Candidate, b: Candidate): Candidate => {
    if (n < 2) return a;
    const q = int(1, n - 1);
    const left = a.stages.filter((s) => s.start < q).map((s) => ({ ...s, end: Math.min(s.end, q) }));
    const right = b.stages.filter((s) => s.end > q).map((s) => ({ ...s, start: Math.max(s.start, q) }));
    const out: StageSpec[] = [...left];
    for (const s of right) {
      if (out.some((o) => o.device === s.device)) {
        const free = unused([...out, ...right]);
        if (free.length > 0) s.device = pick(free);
        else {
          out[out.length - 1].end = s.end; // no device left: the previous stage takes it over
          continue;
        }
      }
      out.push(s);
    }
    return { stages: out };
  };

  const randomCandidate = (): Candidate => {
    const k = int(1, Math.min(allowed.length, n));
    const devices = [...allowed].sort(() => rnd() - 0.5).slice(0, k);
    const cuts = new Set<number>();
    while (cuts.size < k - 1) cuts.add(int(1, n - 1));
    const bounds = [0, ...[...cuts].sort((x, y) => x - y), n];
    return { stages: devices.map((device, i) => ({ device, start: bounds[i], end: bounds[i + 1] })) };
  };

  let pop: Scored[] = [];
  for (const c of seeds) pop.push(scoreOf(c));
  while (pop.length < N)
    pop.push(scoreOf(seeds.length > 0 && rnd() < 0.5 ? mutate(pick(seeds)) : randomCandidate()));

  let rank = new Map<number, number>();
  let crowd = new Map<number, number>();
  const rankAll = () => {
    rank = new Map();
    crowd = new Map();
    sortFronts(pop).forEach((f, r) => {
      for (const i of f) rank.set(i, r);
      for (const [i, d] of crowding(pop, f)) crowd.set(i, d);
    });
  };
  rankAll();
  const tournament = (): Scored => {
    const a = int(0, pop.length - 1);
    const b = int(0, pop.length - 1);
    const ra = rank.get(a)!;
    const rb = rank.get(b)!;
    if (ra !== rb) return pop[ra < rb ? a : b];
    return pop[crowd.get(a)! >= crowd.get(b)! ? a : b];
  };

  const maxGen = opts.generations ?? 300;
  let gen = 0;
  for (; gen < maxGen && performance.now() < deadline; gen++) {
    const children: Scored[] = [];
    while (children.length < N) {
      let c =
        rnd() < 0.7 ? crossover(tournament().candidate, tournament().candidate) : tournament().candidate;
      c = mutate(c);
      if (rnd() < 0.3) c = mutate(c);
      children.push(scoreOf(c));
    }
    const union = [...pop, ...children];
    const next: Scored[] = [];
    const seen = new Set<string>();
    for (const f of sortFronts(union)) {
      const fresh = f.filter((i) => {
        const k = candidateKey(union[i].candidate);
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      if (next.length + fresh.length <= N) {
        for (const i of fresh) next.push(union[i]);
        continue;
      }
      const d = crowding(union, fresh);
      fresh.sort((x, y) => d.get(y)! - d.get(x)!);
      for (const i of fresh.slice(0, N - next.length)) next.push(union[i]);
      break;
    }
    pop = next;
    rankAll();
  }
  return { archive: [...archive.values()], generations: gen, evaluations };
}
