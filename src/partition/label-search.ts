import {
  assignmentBound,
  type BoundTable,
  boundaryTransfer,
  type CapacityBound,
  capacityBound,
  relaxedBound,
  suffixMinEnd,
} from "./bounds.js";
import type { Objective, ResolvedConstraints } from "./constraints.js";
import type { Candidate } from "./evaluate.js";
import { deviceDominance } from "./device-dominance.js";
import { DeviceSetPool, deviceSet, hasDevice, setWords } from "./device-set.js";
import { fedPeriod, feedsFirstStage, type PlanProblem } from "./problem.js";

/** Counters of a search. */
export interface SearchStats {
  labels: number;
  dominated: number;
  pruned: number;
  ms: number;
}

/** Outcome of one label search. */
export interface SearchResult {
  candidate?: Candidate;
  value: number;
  exact: boolean;
  lowerBound: number;
  stats: SearchStats;
}

/** A point of a Pareto front: latency s, bottleneck s (1 / throughput), energy J, and its plan. */
export interface FrontPoint {
  latency: number;
  bottleneck: number;
  energy: number;
  candidate: Candidate;
}

/** What a search optimises: one objective, or the Pareto front over all three. */
export type SearchMode = Objective | "pareto";

/** Shared limits of a run of searches: labels left and a wall-clock deadline (performance.now() ms). */
export interface Budget {
  labels: number;
  deadline: number;
}

interface Label {
  /**
   * Devices used: devices 0-31 as bits of `used` (kept in the label, where the dominance test reads it most),
   * devices 32 and up in the search's {@link DeviceSetPool} at offset `more` (-1 with at most 32 devices).
   */
  used: number;
  more: number;
  lat: number;
  en: number;
  bn: number;
  loads: Float64Array | null;
  lbytes: Float64Array | null;
  prev: Label | null;
  /** Last stage: [start, end) on device. */
  start: number;
  end: number;
  device: number;
  /** Lower bound on the objective of any completion (ranks labels in beam mode). */
  lb: number;
  dead: boolean;
}

/** Completion bounds a search prunes with (built once, shared by repeated searches). */
export interface SearchBounds {
  Rlat?: BoundTable;
  Ren?: BoundTable;
  Rbn?: BoundTable;
  cap?: CapacityBound;
  lp?: CapacityBound;
}

/** The bounds a search for `mode` needs. */
export function prepareBounds(p: PlanProblem, mode: SearchMode, rc: ResolvedConstraints): SearchBounds {
  const inf = Number.POSITIVE_INFINITY;
  const all = mode === "pareto";
  const objective = mode;
  return {
    Rlat: all || objective === "latency" || rc.maxLatency < inf ? relaxedBound(p, rc, "latency") : undefined,
    Ren: all || objective === "energy" || rc.maxEnergy < inf ? relaxedBound(p, rc, "energy") : undefined,
    Rbn:
      all || objective === "throughput" || rc.maxBottleneck < inf
        ? relaxedBound(p, rc, "bottleneck")
        : undefined,
    cap: all || objective === "throughput" || rc.maxBottleneck < inf ? capacityBound(p, rc) : undefined,
    lp: all || objective === "throughput" || rc.maxBottleneck < inf ? assignmentBound(p, rc) : undefined,
  };
}

/** Options of {@link search}. */
export interface SearchOptions {
  incumbent?: { candidate: Candidate; value: number };
  budget: Budget;
  /** A value to beat, used as the incumbent (no plan attached). */
  target?: number;
  bounds?: SearchBounds;
  /** Heuristic mode: keep at most this many labels per (boundary, device), those of least bound. */
  beam?: number;
  /** A proven lower bound on the optimum: a label's bound is never below it. */
  floor?: number;
  /** Pareto mode: the front so far (seeded with known plans), extended in place. */
  front?: FrontPoint[];
}

/**
 * Label-setting dynamic programme over (boundary, last device) for contiguous stages, each on its own device:
 * a label is a partial plan with the set of devices it used and its costs so far (latency, energy, bottleneck
 * and busy time of links that can carry several transfers, as the mode and constraints need). A label is
 * dropped when another at the same node used a subset of its devices and is no worse in every tracked cost
 * (no completion of it can then do better), or when its costs plus relaxed completion bounds cannot beat the
 * incumbent (one objective) or are weakly dominated by the front (Pareto mode). Interchangeable devices (same
 * `type`) are tried in index order only, which their symmetry makes exact. Any number of devices: sets of
 * devices are multi-word bitsets (device-set.ts).
 */
export function search(
  p: PlanProblem,
  mode: SearchMode,
  rc: ResolvedConstraints,
  so: SearchOptions,
): SearchResult {
  const pareto = mode === "pareto";
  const objective: Objective = pareto ? "latency" : mode;
  const front = so.front ?? [];
  const { incumbent, target, bounds, beam, budget } = so;
  const floor = so.floor ?? 0;
  const { n } = p;
  const D = p.devices.length;
  const W = setWords(D);
  const L = p.links.length;
  const outDev = p.outputDevice;
  const inf = Number.POSITIVE_INFINITY;
  const trackLat = pareto || objective === "latency" || rc.maxLatency < inf;
  const trackEn = pareto || objective === "energy" || rc.maxEnergy < inf;
  const trackBn = pareto || objective === "throughput" || rc.maxBottleneck < inf;
  const trackBytes = rc.maxLinkBytes < inf;

  // Planner classes: interchangeable devices (same type) that are allowed; with a device order each is alone.
  const classMembers = new Map<string, number[]>();
  for (let d = 0; d < D; d++) {
    if (!rc.allowed[d]) continue;
    const key = rc.rank ? `d${d}` : `t${p.devices[d].type}`;
    classMembers.set(key, [...(classMembers.get(key) ?? []), d]);
  }
  // Members of a class are used in index order, so a label's used members of class c are its first ones.
  const classes = [...classMembers.values()];
  const allowedSet = deviceSet(
    p.devices.map((_, d) => d).filter((d) => rc.allowed[d]),
    W,
  );
  const pool = new DeviceSetPool(W - 1);
  /** Word w of a label's set of used devices. */
  const wordOf = (lab: Label, w: number): number => (w === 0 ? lab.used : pool.words[lab.more + w - 1]);
  const uses = (lab: Label, d: number): boolean => ((wordOf(lab, d >>> 5) >>> (d & 31)) & 1) === 1;
  // Only links that can carry more than one transfer of a plan need their busy time tracked: shared media
  // and links touching the input or output device (each device runs one stage, so any other link joins two
  // adjacent stages at most once).
  const slot = new Int32Array(L).fill(-1);
  const tracked: number[] = [];
  p.links.forEach((l, i) => {
    if (l.devices.length > 2 || l.devices.includes(p.inputDevice) || l.devices.includes(outDev)) {
      slot[i] = tracked.length;
      tracked.push(i);
    }
  });
  const T = tracked.length;
  const slotDevices = tracked.map((l) => p.links[l].devices);
  const slotSets = new Int32Array(T * W);
  slotDevices.forEach((ds, l) => {
    slotSets.set(deviceSet(ds, W), l * W);
  });

  const { Rlat, Ren, Rbn, cap, lp } = bounds ?? prepareBounds(p, mode, rc);
  const sufMin = suffixMinEnd(p);
  const stats: SearchStats = { labels: 0, dominated: 0, pruned: 0, ms: 0 };

  let inc = incumbent?.value ?? target ?? inf;
  let best: Candidate | undefined = incumbent?.candidate;
  const objOf = (lat: number, en: number, bn: number) =>
    objective === "latency" ? lat : objective === "energy" ? en : bn;
  /** Pareto mode: whether some front point is no worse in all three. */
  const covered = (lat: number, en: number, bn: number): boolean => {
    for (const f of front) if (f.latency <= lat && f.energy <= en && f.bottleneck <= bn) return true;
    return false;
  };
  /** Whether costs bounded below by (lat, en, bn) cannot improve on what is known. */
  const hopeless = (lat: number, en: number, bn: number): boolean =>
    pareto ? covered(lat, en, bn) : Math.max(floor, objOf(lat, en, bn)) >= inc;
  const record = (lat: number, en: number, bn: number, make: () => Candidate): void => {
    if (!pareto) {
      const v = objOf(lat, en, bn);
      if (v < inc) {
        inc = v;
        best = make();
      }
      return;
    }
    if (covered(lat, en, bn)) return;
    let w = 0;
    for (const f of front) if (!(lat <= f.latency && en <= f.energy && bn <= f.bottleneck)) front[w++] = f;
    front.length = w;
    front.push({ latency: lat, energy: en, bottleneck: bn, candidate: make() });
  };
  // Nothing can be feasible (or better) when even the relaxation says so.
  const startLB = objOf(Rlat?.start ?? 0, Ren?.start ?? 0, Rbn?.start ?? 0);
  if (
    (!pareto && startLB >= inc) ||
    (Rlat?.start ?? 0) > rc.maxLatency ||
    (Ren?.start ?? 0) > rc.maxEnergy ||
    (Rbn?.start ?? 0) > rc.maxBottleneck
  ) {
    const lowerBound = best ? inc : target !== undefined ? Math.max(target, startLB) : inf;
    return { candidate: best, value: best ? inc : inf, exact: true, lowerBound, stats };
  }

  const buckets: Label[][] = Array.from({ length: (n + 1) * D }, () => []);
  const root: Label = {
    used: 0,
    more: W > 1 ? pool.add(-1, -1) : -1,
    lat: 0,
    en: 0,
    bn: 0,
    loads: trackBn ? new Float64Array(T) : null,
    lbytes: trackBytes ? new Float64Array(T) : null,
    prev: null,
    start: 0,
    end: 0,
    device: -1,
    lb: 0,
    dead: false,
  };

  // better (W words per device y): devices that can stand in for y in any completion at no extra cost.
  const better = rc.rank ? new Int32Array(D * W) : deviceDominance(p, rc, trackEn);
  const substitutes = better.some((m) => m !== 0);
  // Tracked links a stand-in swap maps onto another link (they hold one of the two devices, not both).
  const moved = slotDevices.map((ds) => {
    for (let y = 0; y < D; y++) {
      for (let z = 0; z < D; z++) {
        if (hasDevice(better, y * W, z) && ds.includes(y) !== ds.includes(z)) return true;
      }
    }
    return false;
  });
  // Scratch sets: devices a dominance test can still match; devices free after the stage being extended.
  const spare = new Int32Array(W);
  const freeE = new Int32Array(W);
  const avail = new Int32Array(W);

  /**
   * a dominates b (same boundary and last device e): every completion of b has one of a that is no worse in
   * any tracked cost. Devices b left free that a used must be matched to distinct devices a left free that are
   * at least as good (a subset of b's devices is the plain case).
   */
  const dominates = (a: Label, b: Label, e: number): boolean => {
    if (trackLat && a.lat > b.lat) return false;
    if (trackEn && a.en > b.en) return false;
    // Under a throughput constraint (not objective) only future link loads matter: past stages already fit.
    if ((pareto || objective === "throughput") && a.bn > b.bn) return false;
    let extra = false;
    for (let w = 0; w < W; w++) {
      if ((wordOf(a, w) & ~wordOf(b, w) & allowedSet[w]) !== 0) {
        if (!substitutes) return false;
        extra = true;
      }
    }
    if (extra) {
      for (let w = 0; w < W; w++) spare[w] = wordOf(b, w) & ~wordOf(a, w) & allowedSet[w];
      for (let w = 0; w < W; w++) {
        for (let m = wordOf(a, w) & ~wordOf(b, w) & allowedSet[w]; m !== 0; m &= m - 1) {
          const y = (w << 5) + 31 - Math.clz32(m & -m);
          let found = false;
          for (let v = 0; v < W && !found; v++) {
            const cand = better[y * W + v] & spare[v];
            if (cand !== 0) {
              spare[v] &= ~(cand & -cand);
              found = true;
            }
          }
          if (!found) return false;
        }
      }
    }
    if (!a.loads && !a.lbytes) return true;
    // Only links a completion of b could still use matter; with stand-ins, a's links to its free devices that
    // a swap moves must be idle (a stand-in's link is the twin of the original's only from zero).
    // Devices b can still reach: its free ones, its last device and the output device.
    for (let w = 0; w < W; w++) avail[w] = ~wordOf(b, w) & allowedSet[w];
    avail[e >>> 5] |= 1 << (e & 31);
    avail[outDev >>> 5] |= 1 << (outDev & 31);
    // Up to 32 devices (the common case) the test is one word: kept apart, it runs 1.4x faster.
    const avail0 = avail[0];
    for (let l = 0; l < T; l++) {
      if (extra && moved[l] && slotDevices[l].some((d) => rc.allowed[d] && !uses(a, d))) {
        if ((a.loads && a.loads[l] > 0) || (a.lbytes && a.lbytes[l] > 0)) return false;
        continue;
      }
      if (W === 1) {
        const m = slotSets[l] & avail0;
        if ((m & (m - 1)) === 0) continue;
      } else {
        let reach = 0;
        for (let w = 0; w < W && reach < 2; w++) {
          const m = slotSets[l * W + w] & avail[w];
          if (m !== 0) reach += (m & (m - 1)) === 0 ? 1 : 2;
        }
        if (reach < 2) continue;
      }
      if (a.loads && a.loads[l] > b.loads![l]) return false;
      if (a.lbytes && a.lbytes[l] > b.lbytes![l]) return false;
    }
    return true;
  };

  const insert = (bucket: Label[], lab: Label, e: number): void => {
    for (const o of bucket) {
      if (!o.dead && dominates(o, lab, e)) {
        stats.dominated++;
        return;
      }
    }
    let w = 0;
    for (const o of bucket) {
      if (o.dead) continue;
      if (dominates(lab, o, e)) {
        o.dead = true;
        stats.dominated++;
        continue;
      }
      bucket[w++] = o;
    }
    bucket.length = w;
    bucket.push(lab);
    stats.labels++;
    if (beam !== undefined && bucket.length > beam) {
      let worst = 0;
      for (let k = 1; k < bucket.length; k++) if (bucket[k].lb > bucket[worst].lb) worst = k;
      bucket[worst].dead = true;
      bucket.splice(worst, 1);
    }
  };

  const reconstruct = (lab: Label, last: { device: number; start: number; end: number }): Candidate => {
    const stages = [last];
    for (let x: Label | null = lab; x && x.device >= 0; x = x.prev)
      stages.push({ device: x.device, start: x.start, end: x.end });
    return { stages: stages.reverse() };
  };

  const extend = (lab: Label, b: number): void => {
    const from = lab.device < 0 ? p.inputDevice : lab.device;
    for (let c = 0; c < classes.length; c++) {
      const members = classes[c];
      let cnt = 0;
      while (cnt < members.length && uses(lab, members[cnt])) cnt++;
      if (cnt >= members.length) continue;
      const e = members[cnt];
      if (rc.rank && lab.device >= 0 && rc.rank[e] <= rc.rank[lab.device]) continue;
      const tr = boundaryTransfer(p, from, e, b);
      if (!tr) continue;
      const link = tr.link;
      const sl = link >= 0 ? slot[link] : -1;
      let loadT = tr.time;
      if (trackBn && sl >= 0) loadT += lab.loads![sl];
      const bnT = Math.max(lab.bn, loadT);
      if (bnT > rc.maxBottleneck || (!pareto && objective === "throughput" && bnT >= inc)) continue;
      let bytesT = tr.bytes;
      if (trackBytes && sl >= 0) bytesT += lab.lbytes![sl];
      if (bytesT > rc.maxLinkBytes) continue;
      const latT = lab.lat + tr.time;
      const enT = lab.en + tr.energy;
      const power = p.devices[e].power;
      const pre = p.prefix[e];
      const base0 = p.startCost[e][b] - pre[b];
      const endC = p.endCost[e];
      const sm = sufMin[e];
      // Devices still free after this stage, for the capacity bounds.
      for (let w = 0; w < W; w++) freeE[w] = allowedSet[w] & ~wordOf(lab, w);
      freeE[e >>> 5] &= ~(1 << (e & 31));
      const usedE = e < 32 ? lab.used | (1 << e) : lab.used;
      let moreE = W > 1 && e < 32 ? lab.more : -1;
      const jmax = p.memEnd[e][b];
      // A first stage the input device feeds is priced as evaluate() prices it (fedPeriod); no other is.
      const fed = b === 0 && feedsFirstStage(p, e);
      for (let j = b + 1; j <= jmax; j++) {
        const base = pre[j] + base0;
        const stLB = base + sm[j];
        const pLB = fed ? fedPeriod(p, e, b, stLB) : stLB;
        // Bounds that only grow with j: stop extending this stage.
        if (pLB > rc.maxBottleneck || latT + stLB > rc.maxLatency || enT + power * stLB > rc.maxEnergy) break;
        if (hopeless(latT + stLB, enT + power * stLB, Math.max(bnT, pLB))) break;
        const st = base + endC[j];
        const lat2 = latT + st;
        const en2 = enT + power * st;
        const bn2 = Math.max(bnT, fed ? fedPeriod(p, e, b, st) : st);
        if (j === n) {
          const to = boundaryTransfer(p, e, outDev, n);
          if (!to) continue;
          const so = to.link >= 0 ? slot[to.link] : -1;
          const prevLoad = so < 0 ? 0 : to.link === link ? loadT : trackBn ? lab.loads![so] : 0;
          const bnF = Math.max(bn2, prevLoad + to.time);
          const prevBytes = so < 0 ? 0 : to.link === link ? bytesT : trackBytes ? lab.lbytes![so] : 0;
          if (prevBytes + to.bytes > rc.maxLinkBytes) continue;
          const latF = lat2 + to.time;
          const enF = en2 + to.energy;
          if (latF > rc.maxLatency || enF > rc.maxEnergy || bnF > rc.maxBottleneck) continue;
          record(latF, enF, bnF, () => reconstruct(lab, { device: e, start: b, end: n }));
          continue;
        }
        // Lower bounds of any completion from (j, e).
        const lbLat = trackLat ? lat2 + Rlat!.at(j, e) : 0;
        const lbEn = trackEn ? en2 + Ren!.at(j, e) : 0;
        let lbBn = trackBn ? Math.max(bn2, Rbn!.at(j, e)) : 0;
        if (cap) lbBn = Math.max(lbBn, cap.at(j, freeE));
        if (
          lbLat > rc.maxLatency ||
          lbEn > rc.maxEnergy ||
          lbBn > rc.maxBottleneck ||
          hopeless(lbLat, lbEn, lbBn)
        ) {
          stats.pruned++;
          continue;
        }
        if (lp && beam === undefined) {
          lbBn = Math.max(lbBn, lp.at(j, freeE));
          if (lbBn > rc.maxBottleneck || hopeless(lbLat, lbEn, lbBn)) {
            stats.pruned++;
            continue;
          }
        }
        let loads: Float64Array | null = null;
        if (trackBn) {
          loads = sl >= 0 ? lab.loads!.slice() : lab.loads;
          if (sl >= 0) loads![sl] = loadT;
        }
        let lbytes: Float64Array | null = null;
        if (trackBytes) {
          lbytes = sl >= 0 ? lab.lbytes!.slice() : lab.lbytes;
          if (sl >= 0) lbytes![sl] = bytesT;
        }
        if (W > 1 && moreE < 0) moreE = pool.add(lab.more, e - 32);
        const next: Label = {
          used: usedE,
          more: moreE,
          lat: lat2,
          en: en2,
          bn: bn2,
          loads,
          lbytes,
          prev: lab,
          start: b,
          end: j,
          device: e,
          lb: Math.max(floor, objOf(lbLat, lbEn, lbBn)),
          dead: false,
        };
        insert(buckets[j * D + e], next, e);
      }
    }
  };

  const labelBound = (lab: Label, b: number, d: number) =>
    Math.max(
      floor,
      lab.lb,
      objOf(
        trackLat ? lab.lat + Rlat!.at(b, d) : 0,
        trackEn ? lab.en + Ren!.at(b, d) : 0,
        trackBn ? Math.max(lab.bn, Rbn!.at(b, d)) : 0,
      ),
    );
  const stale = (lab: Label, b: number, d: number): boolean =>
    pareto
      ? covered(lab.lat + Rlat!.at(b, d), lab.en + Ren!.at(b, d), Math.max(lab.bn, Rbn!.at(b, d)))
      : labelBound(lab, b, d) >= inc;
  extend(root, 0);
  let exact = true;
  let expanded = 0;
  let stopAt = -1;
  outer: for (let b = 1; b < n; b++) {
    for (let d = 0; d < D; d++) {
      const bucket = buckets[b * D + d];
      for (const lab of bucket) {
        if (lab.dead) continue;
        // Re-check against the incumbent, which may have improved since the label was made.
        if (stale(lab, b, d)) {
          stats.pruned++;
          continue;
        }
        extend(lab, b);
        if (
          stats.labels > budget.labels ||
          ((++expanded & 255) === 0 && performance.now() > budget.deadline)
        ) {
          exact = false;
          stopAt = b * D + d;
          break outer;
        }
      }
      buckets[b * D + d] = [];
    }
  }
  budget.labels -= stats.labels;
  let lowerBound = best ? inc : target !== undefined ? target : inf;
  if (!exact) {
    // What is proven: no plan beats the least bound over the labels left unexpanded.
    for (let k = stopAt; k < buckets.length; k++) {
      const b = Math.floor(k / D);
      if (b >= n) break;
      for (const lab of buckets[k])
        if (!lab.dead) lowerBound = Math.min(lowerBound, labelBound(lab, b, k % D));
    }
  }
  return { candidate: best, value: best ? inc : inf, exact, lowerBound, stats };
}
