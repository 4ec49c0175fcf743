import type { Objective, ResolvedConstraints } from "./constraints.js";
import type { Candidate, Evaluation } from "./evaluate.js";
import type { PlanProblem } from "./problem.js";

/** One stage of a local split: positions [start, end) on one core cluster of the stage's device. */
export interface LocalStage {
  coreCluster: string;
  start: number;
  end: number;
  /** Its time, s. */
  time: number;
}

/** A stage run as a local pipeline over its device's core clusters (HiDP's second level). */
export interface LocalSplit {
  /** Index of the global stage. */
  stage: number;
  device: number;
  stages: LocalStage[];
  /** One inference through the local pipeline (local stages plus intra-device copies), s. */
  latency: number;
  /** Time between inferences (slowest local stage or copy), s. */
  period: number;
  energy: number;
}

/** Latency of position q on a core cluster: the device's, scaled by the cluster's share of the device's rate. */
function clusterFactor(p: PlanProblem, d: number, c: number): number {
  const dev = p.devices[d];
  return dev.macsPerSecond / dev.coreClusters![c].macsPerSecond;
}

/**
 * The best local split of positions [start, end) of device d over its core clusters for an objective:
 * contiguous local stages, each core cluster at most once, in any order (exact DP over position, used
 * clusters and last cluster). A cluster runs the device's node latencies scaled by device MAC/s over its own
 * MAC/s (its share of the device); every local stage pays the device's stage overheads; tensors between local
 * stages are copied at the device's memory bandwidth. Power: the cluster's own, else the device's times its
 * share. Undefined when the device has fewer than two core clusters or more than 8.
 */
export function bestLocalSplit(
  p: PlanProblem,
  d: number,
  start: number,
  end: number,
  objective: Objective,
): Omit<LocalSplit, "stage"> | undefined {
  const clusters = p.devices[d].coreClusters;
  if (!clusters || clusters.length < 2 || clusters.length > 8) return undefined;
  const k = clusters.length;
  const dev = p.devices[d];
  const pre = p.prefix[d];
  const factor = clusters.map((_, c) => clusterFactor(p, d, c));
  const power = clusters.map((c, i) => c.activePower ?? dev.power / factor[i]);
  const time = (c: number, i: number, j: number) =>
    (pre[j] - pre[i]) * factor[c] + p.startCost[d][i] + p.endCost[d][j];
  const copy = (b: number) => p.cutBytes[b] / dev.memoryBandwidth;
  interface Cell {
    value: number;
    lat: number;
    period: number;
    energy: number;
    prev: { j: number; mask: number; last: number } | null;
    from: number;
  }
  const len = end - start;
  const key = (j: number, mask: number, last: number) => ((j - start) * (1 << k) + mask) * k + last;
  const cells = new Map<number, Cell>();
  const score = (lat: number, period: number, energy: number) =>
    objective === "latency" ? lat : objective === "throughput" ? period : energy;
  for (let j = start; j < end; j++) {
    const heads: Array<{ mask: number; last: number; cell: Cell | null }> =
      j === start ? [{ mask: 0, last: -1, cell: null }] : [];
    if (j > start) {
      for (let mask = 1; mask < 1 << k; mask++) {
        for (let last = 0; last < k; last++) {
          const cell = cells.get(key(j, mask, last));
          if (cell) heads.push({ mask, last, cell });
        }
      }
    }
    for (const h of heads) {
      const cp = h.cell ? copy(j) : 0;
      for (let c = 0; c < k; c++) {
        if (h.mask & (1 << c)) continue;
        for (let e = j + 1; e <= end; e++) {
          const t = time(c, j, e);
          const lat = (h.cell?.lat ?? 0) + cp + t;
          const period = Math.max(h.cell?.period ?? 0, cp, t);
          const energy = (h.cell?.energy ?? 0) + power[c] * t;
          const mask = h.mask | (1 << c);
          const kk = key(e === end ? end : e, mask, c);
          const old = cells.get(kk);
          if (!old || score(lat, period, energy) < old.value) {
            cells.set(kk, {
              value: score(lat, period, energy),
              lat,
              period,
              energy,
              prev: h.cell ? { j, mask: h.mask, last: h.last } : null,
              from: j,
            });
          }
        }
      }
    }
  }
  let best: { cell: Cell; mask: number; last: number } | undefined;
  for (let mask = 1; mask < 1 << k; mask++) {
    for (let last = 0; last < k; last++) {
      const cell = cells.get(key(end, mask, last));
      if (cell && (!best || cell.value < best.cell.value)) best = { cell, mask, last };
    }
  }
  if (!best || len <= 0) return undefined;
  const stages: LocalStage[] = [];
  let at: { j: number; mask: number; last: number } | null = { j: end, mask: best.mask, last: best.last };
  while (at) {
    const cell: Cell = cells.get(key(at.j, at.mask, at.last))!;
    stages.push({
      coreCluster: clusters[at.last].name,
      start: cell.from,
      end: at.j,
      time: time(at.last, cell.from, at.j),
    });
    at = cell.prev;
  }
  stages.reverse();
  return { device: d, stages, latency: best.cell.lat, period: best.cell.period, energy: best.cell.energy };
}

/**
 * HiDP's second level: after the global split, stages on devices with core clusters are split locally where
 * that helps. Latency and energy: a stage goes local when its local latency (energy) is lower. Throughput:
 * while the slowest pipeline stage is a device stage whose local pipeline has a shorter period, it goes local.
 */
export function localSplits(
  p: PlanProblem,
  c: Candidate,
  ev: Evaluation,
  objective: Objective,
  rc?: ResolvedConstraints,
): LocalSplit[] {
  const splits = new Map<number, LocalSplit>();
  const options = c.stages.map((s, k) => {
    const l = bestLocalSplit(p, s.device, s.start, s.end, objective);
    return l ? { ...l, stage: k } : undefined;
  });
  if (objective !== "throughput") {
    options.forEach((l, k) => {
      if (!l) return;
      const flat = objective === "latency" ? ev.stages[k].time : ev.stages[k].energy;
      if ((objective === "latency" ? l.latency : l.energy) < flat) splits.set(k, l);
    });
    return [...splits.values()];
  }
  for (;;) {
    const cur = applyLocal(ev, [...splits.values()]);
    const periods = cur.stages.map((s) => s.period ?? s.time);
    const worst = periods.indexOf(Math.max(...periods));
    const l = options[worst];
    if (
      worst < 0 ||
      splits.has(worst) ||
      !l ||
      !(l.period < periods[worst]) ||
      periods[worst] < cur.bottleneck
    )
      break;
    const next = applyLocal(ev, [...splits.values(), l]);
    // Local pipelines add copies: keep within the latency and energy limits.
    if (rc && (next.latency > rc.maxLatency || next.energy > rc.maxEnergy)) break;
    splits.set(worst, l);
  }
  return [...splits.values()];
}

/** The evaluation with local splits applied: their stages' latency, period and energy replace the flat ones. */
export function applyLocal(ev: Evaluation, splits: readonly LocalSplit[]): Evaluation {
  if (splits.length === 0) return ev;
  const stages = ev.stages.map((s, k) => {
    const l = splits.find((x) => x.stage === k);
    return l
      ? {
          ...s,
          time: l.latency,
          period: Math.max(
            l.period * (s.coRun ?? 1) + (s.transferCpu ?? 0) + (s.coordinatorCpu ?? 0),
            s.inputFeed ?? 0,
          ),
          energy: l.energy,
        }
      : s;
  });
  let latency = 0;
  let energy = 0;
  let bottleneck = 0;
  for (const t of ev.transfers) {
    latency += t.time;
    energy += t.energy;
  }
  for (const s of stages) {
    latency += s.time;
    energy += s.energy;
    bottleneck = Math.max(bottleneck, s.period ?? s.time);
  }
  for (const l of ev.links) bottleneck = Math.max(bottleneck, l.time);
  return {
    ...ev,
    stages,
    latency,
    energy,
    bottleneck,
    throughput: bottleneck > 0 ? 1 / bottleneck : Number.POSITIVE_INFINITY,
  };
}
