import type { ResolvedConstraints } from "./constraints.js";
import { forEachDevice, setWords } from "./device-set.js";
import { fedPeriod, feedsFirstStage, linkOf, type PlanProblem } from "./problem.js";

/** Which completion cost a bound table holds. */
export type BoundKind = "latency" | "energy" | "bottleneck";

/**
 * Lower bounds on completing a plan. `at(b, d)`: the least cost of running positions [b, n) when the stage
 * ending at boundary b ran on device d (the transfer at b included, d's own stage not), over a relaxation
 * that lets devices run several (non-adjacent) stages and counts each transfer apart from the others on a
 * shared link. `start` is the bound for a whole plan. Infinity means no completion exists even relaxed.
 */
export interface BoundTable {
  kind: BoundKind;
  start: number;
  at(b: number, d: number): number;
}

/** Per device, suffix minima of the end cost: min over j' >= j of endCost[d][j'] (a stage-time lower bound). */
export function suffixMinEnd(p: PlanProblem): Float64Array[] {
  return p.endCost.map((end) => {
    const out = new Float64Array(p.n + 1);
    let m = Number.POSITIVE_INFINITY;
    for (let j = p.n; j >= 1; j--) {
      m = Math.min(m, end[j]);
      out[j] = m;
    }
    out[0] = m;
    return out;
  });
}

/**
 * Transfer time and energy of the tensors crossing boundary b from device `from` to `to`, or undefined when
 * they cannot be sent (no link). Nothing is sent when from === to or no bytes cross.
 */
export function boundaryTransfer(
  p: PlanProblem,
  from: number,
  to: number,
  b: number,
): { link: number; bytes: number; time: number; energy: number } | undefined {
  const bytes = p.cutBytes[b];
  if (from === to || bytes <= 0) return { link: -1, bytes: 0, time: 0, energy: 0 };
  const l = linkOf(p, from, to);
  if (l < 0) return undefined;
  const k = p.links[l];
  return { link: l, bytes, time: k.latency + bytes * k.secondsPerByte, energy: bytes * k.joulesPerByte };
}

/**
 * The relaxed completion bound by backward dynamic programming over (boundary, device), for K groups of
 * interchangeable devices (same type, both allowed or not: the swap symmetry makes their rows equal, so one
 * member stands for its group). The best stage-plus-completion from boundary b on a group does not depend on
 * the previous device, only the transfer into it does (and cost combines by + or max, which commute with the
 * minimum), so each boundary takes one pass over the groups' stages and then K transfers per previous group:
 * O(n (K L + K^2)) for stages of L positions, with early exits once a stage alone costs more than the best
 * completion found (64 distinct devices: 12x faster than trying every stage per previous device). With a device
 * order (ranks strictly increasing) no device can repeat, so each device is its own group and the bound is
 * exact up to shared-link loads.
 */
export function relaxedBound(p: PlanProblem, rc: ResolvedConstraints, kind: BoundKind): BoundTable {
  const { n } = p;
  const D = p.devices.length;
  const R = new Float64Array((n + 1) * D).fill(Number.POSITIVE_INFINITY);
  const sufMin = suffixMinEnd(p);
  const combine =
    kind === "bottleneck" ? (a: number, b: number) => Math.max(a, b) : (a: number, b: number) => a + b;
  const inf = Number.POSITIVE_INFINITY;
  const tCost = (t: { time: number; energy: number }) => (kind === "energy" ? t.energy : t.time);
  const sCost = (e: number, st: number) => (kind === "energy" ? p.devices[e].power * st : st);
  // Every stage and transfer of a plan within a maximum bottleneck takes at most that long (a stage's time,
  // a transfer's load on its link): the relaxation keeps to that too, which tightens the latency and energy
  // tables under a throughput limit (the throughput tie-break searches under one).
  const maxBn = rc.maxBottleneck;
  for (let d = 0; d < D; d++) {
    const t = boundaryTransfer(p, d, p.outputDevice, n);
    R[n * D + d] = t && t.time <= maxBn ? tCost(t) : inf;
  }
  const groupOf = new Map<string, number[]>();
  for (let d = 0; d < D; d++) {
    const key = rc.rank ? `d${d}` : `${p.devices[d].type}:${rc.allowed[d]}`;
    groupOf.set(key, [...(groupOf.get(key) ?? []), d]);
  }
  const groups = [...groupOf.values()];
  // Per group, the allowed members a stage can run on: the first, or the second when the first is `from`.
  const runners = groups.filter((g) => rc.allowed[g[0]]);
  // stage[k]: least cost of a stage from boundary b on runner group k plus its completion (group members
  // share their rows, so the first stands for all).
  const stage = new Float64Array(runners.length);
  const stageFrom = (b: number): void => {
    runners.forEach((g, k) => {
      const e = g[0];
      let best = inf;
      const pre = p.prefix[e];
      const base0 = p.startCost[e][b] - pre[b];
      const jmax = p.memEnd[e][b];
      // A stage's share of the bottleneck is its period: fedPeriod's for a first stage the input device feeds.
      const fed = b === 0 && feedsFirstStage(p, e);
      const period = (st: number) => (fed ? fedPeriod(p, e, b, st) : st);
      const cost = (st: number) => (kind === "bottleneck" ? period(st) : sCost(e, st));
      for (let j = b + 1; j <= jmax; j++) {
        const base = pre[j] + base0;
        const stLB = base + sufMin[e][j];
        if (period(stLB) > maxBn || cost(stLB) >= best) break;
        const st = base + p.endCost[e][j];
        if (period(st) > maxBn) continue;
        const v = combine(cost(st), R[j * D + e]);
        if (v < best) best = v;
      }
      stage[k] = best;
    });
  };
  // best completion from boundary b given the previous device `from` (-1 at the start: the input device)
  const complete = (b: number, from: number): number => {
    const src = from < 0 ? p.inputDevice : from;
    let best = inf;
    for (let k = 0; k < runners.length; k++) {
      if (stage[k] >= best) continue;
      const g = runners[k];
      const e = g[0] === from ? g[1] : g[0];
      if (e === undefined) continue;
      if (rc.rank && from >= 0 && rc.rank[e] <= rc.rank[from]) continue;
      const t = boundaryTransfer(p, src, e, b);
      if (!t || t.time > maxBn) continue;
      const v = combine(tCost(t), stage[k]);
      if (v < best) best = v;
    }
    return best;
  };
  for (let b = n - 1; b >= 1; b--) {
    stageFrom(b);
    for (const g of groups) {
      const v = complete(b, g[0]);
      for (const d of g) R[b * D + d] = v;
    }
  }
  stageFrom(0);
  const start = complete(0, -1);
  return { kind, start, at: (b, d) => R[b * D + d] };
}

/**
 * A throughput bound from capacity: device e can process at most `kappa[e] * T` of reference work in time T
 * (kappa: its largest speed ratio to the reference device over positions), so the work left after boundary
 * b needs T >= work / (sum of kappa over the devices still free). One row per reference device.
 */
export interface CapacityBound {
  /** Lower bound on the bottleneck for positions [b, n) run by the devices in `free` (a device set, device-set.ts). */
  at(b: number, free: Int32Array): number;
}

/** Builds a capacity bound with up to `refs` reference devices (the distinct device types first). */
export function capacityBound(p: PlanProblem, rc: ResolvedConstraints, refs = 3): CapacityBound | undefined {
  const { n } = p;
  const D = p.devices.length;
  const W = setWords(D);
  // Valid only when a stage never costs less than its node latencies.
  const sufMin = suffixMinEnd(p);
  for (let d = 0; d < D; d++) {
    let minStart = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) minStart = Math.min(minStart, p.startCost[d][i]);
    if (minStart + sufMin[d][1] < 0) return undefined;
  }
  const types = new Map<number, number>();
  for (let d = 0; d < D; d++)
    if (rc.allowed[d] && !types.has(p.devices[d].type)) types.set(p.devices[d].type, d);
  const refDevices = [...types.values()].slice(0, refs);
  const rows = refDevices.map((r) => {
    const lat = (d: number, q: number) => p.prefix[d][q + 1] - p.prefix[d][q];
    const kappa = new Float64Array(D);
    for (let e = 0; e < D; e++) {
      let k = 0;
      for (let q = 0; q < n; q++) {
        const w = lat(r, q);
        if (w <= 0) continue;
        const le = lat(e, q);
        k = le > 0 ? Math.max(k, w / le) : Number.POSITIVE_INFINITY;
      }
      kappa[e] = k;
    }
    return { work: p.prefix[r], kappa };
  });
  return {
    at(b, free) {
      let lb = 0;
      for (const row of rows) {
        let cap = 0;
        for (let w = 0; w < W; w++)
          for (let m = free[w]; m !== 0; m &= m - 1) cap += row.kappa[(w << 5) + 31 - Math.clz32(m & -m)];
        const w = row.work[n] - row.work[b];
        if (w <= 0) continue;
        const v = cap > 0 ? w / cap : Number.POSITIVE_INFINITY;
        if (v > lb) lb = v;
      }
      return lb;
    },
  };
}

/**
 * The fractional-assignment bound on the bottleneck: if positions [b, n) could be split fractionally over the
 * free devices U (ignoring contiguity, transfers and stage overheads), the least makespan is the linear
 * programme max over weights mu of `sum_p min_{e in U} mu_e lat[e][p] / sum_{e in U} mu_e` (its dual); any
 * fixed mu gives a valid bound. mu_e = 1 / (device e's latency for the whole model) makes it tight when
 * latencies are proportional across devices. O(n) per query, memoised by (b, U) (U's first word in the key,
 * the whole set checked).
 */
export function assignmentBound(p: PlanProblem, rc: ResolvedConstraints): CapacityBound | undefined {
  const { n } = p;
  const D = p.devices.length;
  const W = setWords(D);
  const sufMin = suffixMinEnd(p);
  for (let d = 0; d < D; d++) {
    let minStart = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) minStart = Math.min(minStart, p.startCost[d][i]);
    if (minStart + sufMin[d][1] < 0) return undefined;
  }
  const mu = new Float64Array(D);
  for (let e = 0; e < D; e++) {
    const w = p.prefix[e][n];
    mu[e] = rc.allowed[e] && w > 0 ? 1 / w : 0;
  }
  // Per position, allowed devices sorted by weighted latency: the minimum over U is the first one in U.
  const sorted: Int32Array[] = [];
  const weighted: Float64Array[] = [];
  for (let q = 0; q < n; q++) {
    const devs = [];
    for (let e = 0; e < D; e++) if (mu[e] > 0) devs.push(e);
    const w = (e: number) => mu[e] * (p.prefix[e][q + 1] - p.prefix[e][q]);
    devs.sort((a, b) => w(a) - w(b));
    sorted.push(Int32Array.from(devs));
    weighted.push(Float64Array.from(devs, w));
  }
  // One word: the key is the set itself. More: entries sharing the first word are told apart by the rest.
  const memo = new Map<number, number>();
  const wide = new Map<number, Array<{ rest: Int32Array; v: number }>>();
  const sameRest = (a: Int32Array, free: Int32Array) => {
    for (let w = 1; w < W; w++) if (a[w - 1] !== free[w]) return false;
    return true;
  };
  return {
    at(b, free) {
      const key = b * 2 ** 32 + (free[0] >>> 0);
      if (W === 1) {
        const hit = memo.get(key);
        if (hit !== undefined) return hit;
      } else {
        const hit = wide.get(key)?.find((x) => sameRest(x.rest, free));
        if (hit) return hit.v;
      }
      let den = 0;
      forEachDevice(free, 0, W, (e) => {
        den += mu[e];
      });
      let num = 0;
      let ok = den > 0;
      for (let q = b; q < n && ok; q++) {
        const s = sorted[q];
        let k = 0;
        while (k < s.length && !((free[s[k] >>> 5] >>> (s[k] & 31)) & 1)) k++;
        if (k === s.length) ok = false;
        else num += weighted[q][k];
      }
      const v = ok ? num / den : b < n ? Number.POSITIVE_INFINITY : 0;
      if (W === 1) {
        if (memo.size > 2e6) memo.clear();
        memo.set(key, v);
      } else {
        if (wide.size > 2e6) wide.clear();
        const list = wide.get(key) ?? [];
        list.push({ rest: free.slice(1), v });
        wide.set(key, list);
      }
      return v;
    },
  };
}
