import type { Objective, ResolvedConstraints } from "./constraints.js";
import { objectiveValue } from "./evaluate.js";
import {
  evaluateReplicas,
  type GroupStageEval,
  priceGroup,
  type ReplicaCandidate,
  type ReplicaEvaluation,
  type ReplicaStageSpec,
} from "./evaluate-replicas.js";
import { fedPeriod, linkOf, type PlanProblem } from "./problem.js";

/** Options for {@link planReplicas}. */
export interface ReplicaPlanOptions {
  objective: Objective;
  constraints: ResolvedConstraints;
  /** A known feasible plan (e.g. the best pipeline) to prune with from the start; returned when nothing beats it. */
  incumbent?: ReplicaCandidate;
  /** Give up proving optimality after this many labels (default 2e6) or milliseconds (default none). */
  maxLabels?: number;
  timeLimitMs?: number;
  /**
   * Largest replica group searched. Default: any size while at most {@link FULL_GROUP_DEVICES} devices may run
   * stages, else 2 (the result then says the search was limited).
   */
  maxGroup?: number;
}

/** Labels per boundary of the heuristic pass that finds an incumbent. */
const BEAM = 4;
/** Devices beyond which the heuristic pass runs (on fewer, the exact search is fast without it). */
const BEAM_DEVICES = 4;

/** Devices up to which every replica group is searched by default. */
export const FULL_GROUP_DEVICES = 10;

/** Counters of a replica search. */
export interface ReplicaSearchStats {
  labels: number;
  dominated: number;
  pruned: number;
  /** Searches run: one per assignment of "its devices run beside each other" to the co-run hosts. */
  searches: number;
  ms: number;
}

/** Result of {@link planReplicas}. */
export interface ReplicaPlanResult {
  candidate?: ReplicaCandidate;
  evaluation?: ReplicaEvaluation;
  /** Objective value: latency s, bottleneck s (1 / throughput) or energy J; Infinity when nothing is feasible. */
  value: number;
  /** True when the search covered every plan (every cut and replica group), so `candidate` is optimal. */
  exact: boolean;
  /** Proven lower bound on the optimum over all plans (equal to `value` when exact). */
  lowerBound: number;
  /** When not exact: what limited the search (label budget, time limit, group size). */
  limited?: string;
  stats: ReplicaSearchStats;
}

interface Label {
  /** Boundary reached; the last stage is [start, b) on `group`. */
  b: number;
  start: number;
  used: number;
  groupMask: number;
  group: GroupStageEval;
  period: number;
  loads: Float64Array | null;
  bytes: Float64Array | null;
  lat: number;
  en: number;
  prev: Label | null;
  dead: boolean;
}

/**
 * Exact planner over cut points and replica groups, with {@link evaluateReplicas}'s cost model. A label-setting
 * search over (boundary, devices used, last group, and the last group's start when it has several replicas, as
 * its shares depend on it): a label is a partial plan with its largest group period, per-link busy time and
 * bytes, expected latency and energy, as the objective and constraints need. A label is dropped when another
 * at the same node is no worse in every tracked figure (their completions are the same), or when its figures
 * plus a completion bound reach the best plan found. Completion bounds are fluid relaxations: the remaining
 * positions' time, each on its fastest remaining device, spread over the remaining devices (throughput) or
 * summed (latency, energy). Groups are enumerated once per symmetry class (same device `type`, host and
 * pipeline figures, and rank in a device order) by count, taking the class's lowest-index unused devices, which
 * the symmetry makes exact. Co-run hosts: a device's co-run factor and coordinator CPU depend on whether the
 * plan uses another device of its host, so one search runs per assignment of "used together / at most one
 * used" to the hosts where that matters, and each plan is priced exactly in the search that admits it.
 * Budgets (labels, time, group size) end the search early with the best plan found and `exact: false`.
 */
export function planReplicas(p: PlanProblem, opts: ReplicaPlanOptions): ReplicaPlanResult {
  const t0 = performance.now();
  const rc = opts.constraints;
  const objective = opts.objective;
  const D = p.devices.length;
  const inf = Number.POSITIVE_INFINITY;
  const stats: ReplicaSearchStats = { labels: 0, dominated: 0, pruned: 0, searches: 0, ms: 0 };
  const allowed = p.devices.map((_, d) => d).filter((d) => rc.allowed[d]);
  const finish = (r: Omit<ReplicaPlanResult, "stats">): ReplicaPlanResult => ({
    ...r,
    stats: { ...stats, ms: performance.now() - t0 },
  });
  if (allowed.length === 0) return finish({ value: inf, exact: true, lowerBound: inf });
  const maxGroup = opts.maxGroup ?? (allowed.length <= FULL_GROUP_DEVICES ? allowed.length : 2);
  const limits: string[] = [];
  if (maxGroup < allowed.length)
    limits.push(
      `replica groups of at most ${maxGroup} devices searched (${allowed.length} devices may run stages)`,
    );
  const budget = {
    labels: opts.maxLabels ?? 2e6,
    deadline: opts.timeLimitMs !== undefined ? t0 + opts.timeLimitMs : inf,
  };

  let best: { candidate: ReplicaCandidate; evaluation: ReplicaEvaluation; value: number } | undefined;
  if (opts.incumbent) {
    const ev = evaluateReplicas(p, opts.incumbent, rc);
    if (ev.feasible)
      best = { candidate: opts.incumbent, evaluation: ev, value: objectiveValue(ev, objective) };
  }

  // Hosts where running beside another device changes a device's figures, with at least two allowed devices.
  const hostDevices = new Map<number, number[]>();
  for (const d of allowed) {
    const h = p.devices[d].host;
    if (h !== undefined) hostDevices.set(h, [...(hostDevices.get(h) ?? []), d]);
  }
  const hosts = [...hostDevices.entries()]
    .filter(
      ([, ds]) =>
        ds.length >= 2 &&
        ds.some((d) => (p.devices[d].coRun ?? 1) > 1 || (p.devices[d].coordinatorCpu ?? 0) > 0),
    )
    .map(([, ds]) => ds.reduce((m, d) => m | (1 << d), 0));

  const consider = (c: ReplicaCandidate | undefined) => {
    if (!c) return;
    let ev = evaluateReplicas(p, c, rc);
    let v = objectiveValue(ev, objective);
    // A replica priced to take no requests (the input device's own replica of a first stage it feeds, see
    // priceGroup) is left out: the plan without it is as good, and a deployment cannot weight a replica by 0.
    if (ev.stages.some((g) => g.replicas.length > 1 && g.replicas.some((r) => r.share === 0))) {
      const kept: ReplicaCandidate = {
        stages: c.stages.map((s, k) => {
          const g = ev.stages[k];
          const ds = s.devices.filter((d) => g.replicas.find((r) => r.device === d)?.share !== 0);
          return { ...s, devices: ds.length > 0 ? ds : s.devices };
        }),
      };
      const kev = evaluateReplicas(p, kept, rc);
      const kv = objectiveValue(kev, objective);
      if (kev.feasible && kv <= v * (1 + 1e-12)) {
        c = kept;
        ev = kev;
        v = kv;
      }
    }
    if (ev.feasible && (!best || v < best.value)) best = { candidate: c, evaluation: ev, value: v };
  };
  // Incumbents first: data parallelism over all devices, then a beam search (a few labels per boundary) per
  // co-run assignment. Without a good incumbent the exact search prunes little.
  consider({ stages: [{ devices: allowed, start: 0, end: p.n }] });
  if (D > 30) {
    // Device sets are one number of bits in this search: beyond 30 devices only the incumbents are compared.
    return finish({
      ...(best ? { candidate: best.candidate, evaluation: best.evaluation } : {}),
      value: best?.value ?? inf,
      exact: false,
      lowerBound: objective === "throughput" ? Math.min(best?.value ?? inf, capacityBound(p, allowed)) : 0,
      limited: `replica groups are searched on clusters of at most 30 devices (this one has ${D}): the plan is the best of the pipeline and data parallelism`,
    });
  }
  // One search per co-run assignment `act`, pruned by the best plan so far; beam > 0 keeps that many labels per
  // boundary (a heuristic pass), 0 searches exactly.
  const run = (act: number, beam: number) =>
    searchOne(p, rc, objective, allowed, hosts, act, maxGroup, best?.value ?? inf, budget, stats, beam);
  for (let act = 0; act < 1 << hosts.length && allowed.length > BEAM_DEVICES; act++)
    consider(run(act, BEAM).candidate);
  let complete = true;
  for (let act = 0; act < 1 << hosts.length && complete; act++) {
    stats.searches++;
    const r = run(act, 0);
    consider(r.candidate);
    if (!r.complete) {
      complete = false;
      limits.push(
        performance.now() >= budget.deadline
          ? `time limit reached after ${(performance.now() - t0).toFixed(0)} ms`
          : `label budget of ${opts.maxLabels ?? 2e6} reached`,
      );
    }
  }
  const exact = complete && limits.length === 0;
  const value = best?.value ?? inf;
  const root = Math.max(
    rootBound(p, objective, allowed),
    objective === "throughput" ? capacityBound(p, allowed) : 0,
  );
  return finish({
    ...(best ? { candidate: best.candidate, evaluation: best.evaluation } : {}),
    value,
    exact,
    lowerBound: exact ? value : Math.min(value, root),
    ...(exact ? {} : { limited: limits.join("; ") }),
  });
}

/** A lower bound on any plan's objective from the fluid relaxation at the root (co-run factors taken as 1). */
/**
 * A lower bound on the time between inferences of any plan on `allowed`, by LP duality. Whatever the cuts and
 * replica groups, each position runs on some device for every request, and no device is busy more than the
 * period: for device weights lambda on the simplex, sum over positions of min over devices of lambda_d x its
 * time is at most the period (the dual of assigning positions fractionally to devices). Weights start
 * inversely proportional to each device's whole-model time (exact for devices whose speeds are proportional)
 * and move towards the devices the minimum overloads; every weight vector tried gives a valid bound, the
 * largest is returned. Negative start/end costs are charged to every position, so the bound stays valid.
 */
export function capacityBound(p: PlanProblem, allowed: readonly number[]): number {
  if (allowed.length === 0) return Number.POSITIVE_INFINITY;
  const n = p.n;
  const t = allowed.map((d) => {
    let neg = 0;
    for (const x of p.startCost[d]) neg = Math.min(neg, x);
    let negEnd = 0;
    for (const x of p.endCost[d]) negEnd = Math.min(negEnd, x);
    const off = neg + negEnd;
    return Float64Array.from({ length: n }, (_, q) => Math.max(0, p.prefix[d][q + 1] - p.prefix[d][q] + off));
  });
  const whole = t.map((row) => row.reduce((a, x) => a + x, 0));
  let lambda = whole.map((w) => (w > 0 ? 1 / w : 0));
  let best = 0;
  for (let it = 0; it < 30; it++) {
    const sum = lambda.reduce((a, x) => a + x, 0);
    if (!(sum > 0)) break;
    lambda = lambda.map((x) => x / sum);
    const load = new Float64Array(allowed.length);
    let g = 0;
    for (let q = 0; q < n; q++) {
      let m = Number.POSITIVE_INFINITY;
      let arg = 0;
      for (let k = 0; k < allowed.length; k++) {
        const v = lambda[k] * t[k][q];
        if (v < m) {
          m = v;
          arg = k;
        }
      }
      g += m;
      load[arg] += t[arg][q];
    }
    best = Math.max(best, g);
    // Devices the minimum loads beyond the mean get more weight, idle ones less.
    const mean = load.reduce((a, x) => a + x, 0) / allowed.length;
    if (!(mean > 0)) break;
    lambda = lambda.map((x, k) => x * Math.sqrt(Math.max(load[k], mean * 1e-3) / mean));
  }
  return best;
}

function rootBound(p: PlanProblem, objective: Objective, allowed: number[]): number {
  const ones = new Float64Array(p.devices.length).fill(1);
  const b = new RemainderBounds(p, ones);
  const mask = allowed.reduce((m, d) => m | (1 << d), 0);
  const kind = objective === "throughput" ? 0 : objective === "latency" ? 1 : 2;
  return b.at(mask, 0, kind);
}

/**
 * Completion bounds for the positions from a boundary on, by the set of devices still free: the sum over
 * positions of the least (factor x) latency, or power x latency, among the free devices, plus the most the
 * start/end costs can take off (they may be negative), divided by the free devices for throughput.
 */
class RemainderBounds {
  private readonly memo = new Map<number, Float64Array[]>();
  private readonly neg: Float64Array;
  constructor(
    private readonly p: PlanProblem,
    private readonly f: Float64Array,
  ) {
    this.neg = Float64Array.from(p.devices, (_, d) => {
      let a = 0;
      let b = 0;
      for (const x of p.startCost[d]) a = Math.min(a, x);
      for (const x of p.endCost[d]) b = Math.min(b, x);
      return Math.min(0, a + b);
    });
  }

  /** kind 0: bottleneck, 1: latency, 2: energy. */
  at(mask: number, b: number, kind: 0 | 1 | 2): number {
    let arrs = this.memo.get(mask);
    if (!arrs) {
      const { p, f } = this;
      const ds: number[] = [];
      for (let d = 0; d < p.devices.length; d++) if (mask & (1 << d)) ds.push(d);
      const thr = new Float64Array(p.n + 1);
      const lat = new Float64Array(p.n + 1);
      const en = new Float64Array(p.n + 1);
      let negT = 0;
      let negL = 0;
      let negE = 0;
      for (const d of ds) {
        negT += f[d] * this.neg[d];
        negL = Math.min(negL, this.neg[d]);
        negE = Math.min(negE, p.devices[d].power * this.neg[d]);
      }
      for (let q = p.n - 1; q >= 0; q--) {
        let mt = Number.POSITIVE_INFINITY;
        let ml = Number.POSITIVE_INFINITY;
        let me = Number.POSITIVE_INFINITY;
        for (const d of ds) {
          const x = p.prefix[d][q + 1] - p.prefix[d][q];
          mt = Math.min(mt, f[d] * x);
          ml = Math.min(ml, x);
          me = Math.min(me, p.devices[d].power * x);
        }
        thr[q] = thr[q + 1] + mt;
        lat[q] = lat[q + 1] + ml;
        en[q] = en[q + 1] + me;
      }
      // Each free device runs at most one more stage.
      arrs = [
        thr.map((x) => Math.max(0, (x + negT) / ds.length)),
        lat.map((x) => Math.max(0, x + ds.length * negL)),
        en.map((x) => Math.max(0, x + ds.length * negE)),
      ];
      if (this.memo.size < 1 << 16) this.memo.set(mask, arrs);
    }
    return arrs[kind][b];
  }
}

/** Devices of `mask`, in index order. */
function bits(mask: number): number[] {
  const out: number[] = [];
  for (let d = 0; mask !== 0; d++, mask >>>= 1) if (mask & 1) out.push(d);
  return out;
}

/**
 * One search with fixed co-run assignment `act` (bit h: the devices of host mask `hosts[h]` run beside each
 * other, so a plan must use two or more of them; otherwise at most one).
 */
function searchOne(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
  allowed: number[],
  hosts: number[],
  act: number,
  maxGroup: number,
  incumbentValue: number,
  budget: { labels: number; deadline: number },
  stats: ReplicaSearchStats,
  beam: number,
): { candidate?: ReplicaCandidate; complete: boolean } {
  const { n } = p;
  const D = p.devices.length;
  const L = p.links.length;
  const inf = Number.POSITIVE_INFINITY;
  const coRun = new Float64Array(D).fill(1);
  const coordinator = new Float64Array(D);
  const activeHosts = hosts.filter((_, h) => act & (1 << h));
  const lonelyHosts = hosts.filter((_, h) => !(act & (1 << h)));
  for (const m of activeHosts) {
    for (const d of bits(m)) {
      coRun[d] = Math.max(1, p.devices[d].coRun ?? 1);
      coordinator[d] = p.devices[d].coordinatorCpu ?? 0;
    }
  }
  const trackBn = objective === "throughput" || Number.isFinite(rc.maxBottleneck);
  const trackLat = objective === "latency" || Number.isFinite(rc.maxLatency);
  const trackEn = objective === "energy" || Number.isFinite(rc.maxEnergy);
  const trackBytes = Number.isFinite(rc.maxLinkBytes);
  const bounds = new RemainderBounds(p, coRun);

  // Symmetry classes among the allowed devices, each in index order.
  const classKey = (d: number) => {
    const x = p.devices[d];
    return [
      x.type,
      x.host ?? -1,
      x.coRun ?? 1,
      x.transferCpu ?? 0,
      x.coordinatorCpu ?? 0,
      rc.rank ? `r${d}` : "",
      d === p.inputDevice || d === p.outputDevice ? `io${d}` : "",
    ].join("|");
  };
  const classMap = new Map<string, number[]>();
  for (const d of allowed) classMap.set(classKey(d), [...(classMap.get(classKey(d)) ?? []), d]);
  const classes = [...classMap.values()];
  const allowedMask = allowed.reduce((m, d) => m | (1 << d), 0);

  /** Devices a plan that used `used` may still take. */
  const freeMask = (used: number): number => {
    let free = allowedMask & ~used;
    for (const h of lonelyHosts) if (used & h) free &= ~h;
    return free;
  };
  /** Canonical groups (as masks) drawn from the free devices of `used`. */
  const groupsMemo = new Map<number, number[]>();
  const groupsOf = (used: number): number[] => {
    let gs = groupsMemo.get(used);
    if (gs) return gs;
    const free = freeMask(used);
    const avail = classes.map((c) => c.filter((d) => free & (1 << d)));
    gs = [];
    const rec = (ci: number, mask: number, size: number) => {
      if (ci === avail.length) {
        if (mask !== 0) {
          for (const h of lonelyHosts) if (bits(mask & h).length > 1) return;
          gs!.push(mask);
        }
        return;
      }
      let m = mask;
      rec(ci + 1, m, size);
      for (let c = 0; c < avail[ci].length && size + c + 1 <= maxGroup; c++) {
        m |= 1 << avail[ci][c];
        rec(ci + 1, m, size + c + 1);
      }
    };
    rec(0, 0, 0);
    groupsMemo.set(used, gs);
    return gs;
  };
  const rank = rc.rank;
  const maxRank = (mask: number) => (rank ? Math.max(...bits(mask).map((d) => rank[d])) : 0);
  const minRank = (mask: number) => (rank ? Math.min(...bits(mask).map((d) => rank[d])) : 0);

  // Group prices for stages starting at the boundary being expanded, by group mask (index e - b - 1).
  let priceMemo = new Map<number, GroupRow>();
  const sufMinEnd = p.devices.map((_, d) => {
    const out = new Float64Array(n + 2).fill(inf);
    for (let j = n; j >= 0; j--) out[j] = Math.min(out[j + 1], p.endCost[d][j]);
    return out;
  });
  /** A group's stage prices from boundary `b`, by end, computed as the search reaches them. */
  interface GroupRow {
    ds: number[];
    eMax: number;
    /** By e - b - 1; holes where the search has not looked. */
    prices: Array<GroupStageEval | undefined>;
  }
  const rowOf = (b: number, mask: number): GroupRow => {
    let row = priceMemo.get(mask);
    if (row) return row;
    const ds = bits(mask);
    let eMax = n;
    for (const d of ds) eMax = Math.min(eMax, p.memEnd[d][b]);
    row = { ds, eMax, prices: [] };
    priceMemo.set(mask, row);
    return row;
  };
  const priceAt = (row: GroupRow, b: number, e: number): GroupStageEval => {
    let g = row.prices[e - b - 1];
    if (!g) {
      g = priceGroup(p, row.ds, b, e, coRun, coordinator, () => 0);
      row.prices[e - b - 1] = g;
    }
    return g;
  };
  /**
   * Lower bounds, non-decreasing in e, on a group's period, mean time and mean energy for a stage [b, e) or
   * any longer one: whether the search can stop extending it.
   */
  const stopAt = (x: Label, ds: readonly number[], b: number, e: number): boolean => {
    let rate = 0;
    let time = inf;
    let energy = inf;
    for (const d of ds) {
      const t = p.prefix[d][e] - p.prefix[d][b] + p.startCost[d][b] + sufMinEnd[d][e];
      // A first stage the input device feeds: each fed replica's period leaves out the input's encode and the
      // group runs no faster than the feed (priceGroup), so fedPeriod's is a lower bound here too.
      const lb = fedPeriod(p, d, b, t * coRun[d] + coordinator[d]);
      rate += lb > 0 ? 1 / lb : inf;
      time = Math.min(time, t);
      energy = Math.min(energy, p.devices[d].power * t);
    }
    if (trackBn && 1 / rate >= cutoffBn()) return true;
    if (trackLat && x.lat + time > rc.maxLatency * (1 + 1e-12)) return true;
    if (trackEn && x.en + energy > rc.maxEnergy * (1 + 1e-12)) return true;
    if (objective === "latency" && x.lat + time >= bestValue) return true;
    if (objective === "energy" && x.en + energy >= bestValue) return true;
    return false;
  };

  let bestValue = incumbentValue;
  let bestLabel: Label | null = null;
  const cutoffBn = () =>
    Math.min(rc.maxBottleneck * (1 + 1e-12), objective === "throughput" ? bestValue : inf);

  const buckets: Array<Map<string, Label[]>> = Array.from({ length: n + 1 }, () => new Map());
  const inputGroup = priceGroupAt(p.inputDevice);
  const root: Label = {
    b: 0,
    start: 0,
    used: 0,
    groupMask: 0,
    group: inputGroup,
    period: 0,
    loads: trackBn ? new Float64Array(L) : null,
    bytes: trackBytes ? new Float64Array(L) : null,
    lat: 0,
    en: 0,
    prev: null,
    dead: false,
  };
  buckets[0].set("root", [root]);

  const partialValue = (x: Label): { bn: number; lat: number; en: number } => {
    let bn = x.period;
    if (x.loads) for (let l = 0; l < L; l++) bn = Math.max(bn, x.loads[l]);
    return { bn, lat: x.lat, en: x.en };
  };
  /** The objective's lower bound over a partial plan's completions. */
  const boundOf = (x: Label, free: number): number => {
    const v = partialValue(x);
    if (objective === "throughput") return free ? Math.max(v.bn, bounds.at(free, x.b, 0)) : v.bn;
    if (objective === "latency") return v.lat + (free ? bounds.at(free, x.b, 1) : 0);
    return v.en + (free ? bounds.at(free, x.b, 2) : 0);
  };
  /** Whether a partial plan (with `free` devices left after it) can still beat the incumbent and meet the limits. */
  const hopeful = (x: Label, free: number): boolean => {
    const v = partialValue(x);
    const bBn = free ? Math.max(v.bn, bounds.at(free, x.b, 0)) : v.bn;
    const bLat = v.lat + (free ? bounds.at(free, x.b, 1) : 0);
    const bEn = v.en + (free ? bounds.at(free, x.b, 2) : 0);
    if (trackBn && bBn > rc.maxBottleneck * (1 + 1e-12)) return false;
    if (trackLat && bLat > rc.maxLatency * (1 + 1e-12)) return false;
    if (trackEn && bEn > rc.maxEnergy * (1 + 1e-12)) return false;
    const o = objective === "throughput" ? bBn : objective === "latency" ? bLat : bEn;
    return o < bestValue;
  };
  const dominates = (a: Label, x: Label): boolean => {
    if (trackBn) {
      if (a.period > x.period) return false;
      for (let l = 0; l < L; l++) if (a.loads![l] > x.loads![l]) return false;
    }
    if (trackBytes) for (let l = 0; l < L; l++) if (a.bytes![l] > x.bytes![l]) return false;
    if (trackLat && a.lat > x.lat) return false;
    if (trackEn && a.en > x.en) return false;
    return true;
  };
  const insert = (x: Label) => {
    const key =
      x.group.devices.length > 1 ? `${x.used}|${x.groupMask}|${x.start}` : `${x.used}|${x.groupMask}`;
    const bucket = buckets[x.b];
    const list = bucket.get(key);
    if (!list) {
      bucket.set(key, [x]);
      return;
    }
    for (const y of list) {
      if (!y.dead && dominates(y, x)) {
        stats.dominated++;
        return;
      }
    }
    let w = 0;
    for (const y of list) {
      if (!y.dead && dominates(x, y)) {
        y.dead = true;
        stats.dominated++;
      }
      if (!y.dead) list[w++] = y;
    }
    list.length = w;
    list.push(x);
  };

  /** Adds the transfer at boundary b from group `from` to group `to` to a label's figures; false without a link. */
  const transfer = (x: Label, b: number, from: GroupStageEval, to: GroupStageEval): boolean => {
    const bytes = p.cutBytes[b];
    if (bytes <= 0) return true;
    const single = from.replicas.length === 1 && to.replicas.length === 1;
    for (const a of from.replicas) {
      for (const c of to.replicas) {
        if (a.device === c.device) continue;
        const l = linkOf(p, a.device, c.device);
        if (l < 0) return false;
        const fraction = single ? 1 : a.share * c.share;
        const link = p.links[l];
        const time = fraction * (link.latency + bytes * link.secondsPerByte);
        if (x.loads) x.loads[l] += time;
        if (x.bytes) x.bytes[l] += fraction * bytes;
        x.lat += time;
        x.en += fraction * (bytes * link.joulesPerByte);
      }
    }
    return true;
  };
  const outputGroup = priceGroupAt(p.outputDevice);
  const activeOk = (used: number) => activeHosts.every((h) => bits(used & h).length >= 2);

  let complete = true;
  outer: for (let b = 0; b < n; b++) {
    priceMemo = new Map();
    let lists: Iterable<Label[]> = buckets[b].values();
    if (beam > 0) {
      // Heuristic pass: only the `beam` labels of least bound go on.
      const all = [...buckets[b].values()].flat().filter((x) => !x.dead);
      const key = all.map((x) => boundOf(x, freeMask(x.used)));
      lists = [
        all
          .map((x, i) => [key[i], x] as const)
          .sort((u, v) => u[0] - v[0])
          .slice(0, beam)
          .map((u) => u[1]),
      ];
    }
    for (const list of lists) {
      for (const x of list) {
        if (x.dead) continue;
        if (
          stats.labels >= budget.labels ||
          (stats.labels % 16 === 0 && performance.now() > budget.deadline)
        ) {
          complete = false;
          break outer;
        }
        stats.labels++;
        if (!hopeful(x, freeMask(x.used))) {
          stats.pruned++;
          continue;
        }
        const lastMax = x.groupMask ? maxRank(x.groupMask) : Number.NEGATIVE_INFINITY;
        for (const g of groupsOf(x.used)) {
          if (rank && x.groupMask && minRank(g) <= lastMax) continue;
          const used = x.used | g;
          const free = freeMask(used);
          const row = rowOf(b, g);
          for (let e = free === 0 ? n : b + 1; e <= row.eMax; e++) {
            if (stopAt(x, row.ds, b, e)) break;
            const grp = priceAt(row, b, e);
            if (trackBn) {
              const cut = cutoffBn();
              if (grp.period >= cut || (free && bounds.at(free, e, 0) >= cut)) continue;
            }
            // Before the transfers are priced (they only add): the stage and a completion bound.
            if (objective === "latency" && x.lat + grp.time + (free ? bounds.at(free, e, 1) : 0) >= bestValue)
              continue;
            if (objective === "energy" && x.en + grp.energy + (free ? bounds.at(free, e, 2) : 0) >= bestValue)
              continue;
            const y: Label = {
              b: e,
              start: b,
              used,
              groupMask: g,
              group: grp,
              period: Math.max(x.period, grp.period),
              loads: x.loads ? x.loads.slice() : null,
              bytes: x.bytes ? x.bytes.slice() : null,
              lat: x.lat,
              en: x.en,
              prev: x,
              dead: false,
            };
            if (!transfer(y, b, x.group, grp)) continue;
            y.lat += grp.time;
            y.en += grp.energy;
            if (e === n) {
              if (!activeOk(used) || !transfer(y, n, grp, outputGroup)) continue;
              // The evaluator's checks, exactly (the figures are summed in its order).
              const v = partialValue(y);
              if (v.bn > rc.maxBottleneck || v.lat > rc.maxLatency || v.en > rc.maxEnergy) continue;
              if (trackBytes && y.bytes!.some((z) => z > rc.maxLinkBytes)) continue;
              const o = objective === "throughput" ? v.bn : objective === "latency" ? v.lat : v.en;
              if (!(o < bestValue)) continue;
              bestValue = o;
              bestLabel = y;
              continue;
            }
            if (trackBytes && y.bytes!.some((v) => v > rc.maxLinkBytes)) continue;
            if (!hopeful(y, free)) {
              stats.pruned++;
              continue;
            }
            insert(y);
          }
        }
      }
    }
    buckets[b] = new Map();
  }
  if (!bestLabel) return { complete };
  const stages: ReplicaStageSpec[] = [];
  for (let x: Label | null = bestLabel; x?.prev; x = x.prev)
    stages.push({ devices: [...x.group.devices], start: x.start, end: x.b });
  return { candidate: { stages: stages.reverse() }, complete };
}

/** The input or output device as a group of one that takes no time (the end of a transfer). */
function priceGroupAt(d: number): GroupStageEval {
  return {
    devices: [d],
    replicas: [{ device: d, share: 1, time: 0, period: 0, memory: 0, energy: 0 }],
    time: 0,
    period: 0,
    memory: 0,
    energy: 0,
  };
}
