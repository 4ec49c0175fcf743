import type { AnalyzedModel } from "../ir/analyze.js";
import { enumerateCuts } from "./cuts.js";
import type { PartitionOrder } from "./order.js";
import type { PlanProblem } from "./problem.js";

/** One branch of a fork/join region: order positions, and the problem tensors it reads from and sends out of the region. */
export interface Branch {
  positions: number[];
  /** Indices into `problem.tensors` made before the region (or graph inputs) that the branch reads. */
  reads: number[];
  /** Bytes of the tensors it makes that the join (or the graph's outputs) read. */
  outBytes: number;
}

/**
 * A fork/join region of the partition order: positions [start, end) between two boundaries that each carry
 * at most one activation (or the graph inputs at 0), whose layers (the join left out) fall into at least two
 * branches that share no tensor. `join` is the position of the node that meets them (the last of the region),
 * absent when the region ends the graph and its branches are outputs (the heads of a detector).
 */
export interface BranchRegion {
  start: number;
  end: number;
  join?: number;
  branches: Branch[];
}

/**
 * Every fork/join region between consecutive single-tensor boundaries of the order: independent branches
 * (Inception blocks, detector heads, the towers of a two-input model) that may run on different devices at
 * the same time. A boundary inside a region never carries one tensor (the fork tensor and the branches'
 * outputs are in flight together), so regions between consecutive boundaries are the innermost ones.
 */
export function branchRegions(model: AnalyzedModel, order: PartitionOrder, p: PlanProblem): BranchRegion[] {
  const n = order.nodes.length;
  const bounds = [0];
  for (const c of enumerateCuts(model, order)) if (c.tensors.length === 1) bounds.push(c.index);
  bounds.push(n);
  const out: BranchRegion[] = [];
  for (let b = 0; b + 1 < bounds.length; b++) {
    const x = bounds[b];
    const y = bounds[b + 1];
    if (y - x < 3) continue;
    const region = regionOf(model, order, p, x, y, y === n ? undefined : y - 1);
    if (region) out.push(region);
    else if (y === n) {
      const joined = regionOf(model, order, p, x, y, y - 1);
      if (joined) out.push(joined);
    }
  }
  return out;
}

function regionOf(
  model: AnalyzedModel,
  order: PartitionOrder,
  p: PlanProblem,
  x: number,
  y: number,
  join: number | undefined,
): BranchRegion | undefined {
  const last = join ?? y;
  const parent = Array.from({ length: last - x }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const { graph } = model;
  for (let q = x; q < last; q++) {
    const node = graph.nodes[order.nodes[q]];
    for (const name of [...node.inputs, ...node.implicitInputs]) {
      const prod = name ? graph.values.get(name)?.producer : undefined;
      if (!prod || prod.isConstant) continue;
      const r = order.position[prod.index];
      if (r >= x && r < last) parent[find(r - x)] = find(q - x);
    }
  }
  const roots = new Map<number, number>();
  const branchOf = new Int32Array(p.n).fill(-1);
  for (let q = x; q < last; q++) {
    const r = find(q - x);
    if (!roots.has(r)) roots.set(r, roots.size);
    branchOf[q] = roots.get(r)!;
  }
  if (roots.size < 2) return undefined;
  const branches: Branch[] = Array.from({ length: roots.size }, () => ({
    positions: [],
    reads: [],
    outBytes: 0,
  }));
  for (let q = x; q < last; q++) branches[branchOf[q]].positions.push(q);
  p.tensors.forEach((t, ti) => {
    if (t.def < x) {
      const seen = new Set<number>();
      for (const u of t.uses) if (u < p.n && branchOf[u] >= 0) seen.add(branchOf[u]);
      for (const k of seen) branches[k].reads.push(ti);
    } else if (t.def < last && branchOf[t.def] >= 0) {
      if (t.uses.some((u) => u >= p.n || branchOf[u] !== branchOf[t.def]))
        branches[branchOf[t.def]].outBytes += t.bytes;
    }
  });
  return { start: x, end: y, ...(join !== undefined ? { join } : {}), branches };
}

/** A placement of a region's branches: the device of each branch, when each device's branches arrive where they meet, s. */
export interface BranchPlacement {
  devices: number[];
  /** Latency from the region's start to the join's (or the outputs') arrival, s. */
  time: number;
}

/** Most placements tried one by one per (region, source device, join device); above it branches go greedily. */
export const EXACT_PLACEMENTS = 4096;

/**
 * The fastest placement of a region's branches for a fork tensor held on `from` and a join on `to`: each
 * device runs its branches as one stage (its node times, plus one stage's start and end cost) once every
 * tensor they read has arrived, then sends their outputs to `to`, where the join runs. Exact over all
 * placements when there are at most {@link EXACT_PLACEMENTS}; else greedy (largest branch first, on the
 * device where it arrives earliest), and `exact` is false.
 */
export function placeBranches(
  p: PlanProblem,
  region: BranchRegion,
  from: number,
  to: number,
  tx: (a: number, b: number, bytes: number) => number,
): BranchPlacement & { exact: boolean } {
  const D = p.devices.length;
  const K = region.branches.length;
  const lat = (d: number, q: number) => p.prefix[d][q + 1] - p.prefix[d][q];
  const work = region.branches.map((br) =>
    Array.from({ length: D }, (_, d) => br.positions.reduce((s, q) => s + lat(d, q), 0)),
  );
  const joinTime = region.join === undefined ? 0 : lat(to, region.join);
  const priceOf = (devices: readonly number[]): number => {
    let worst = 0;
    for (let s = 0; s < D; s++) {
      let compute = 0;
      let outBytes = 0;
      const reads = new Set<number>();
      let any = false;
      devices.forEach((d, k) => {
        if (d !== s) return;
        any = true;
        compute += work[k][s];
        outBytes += region.branches[k].outBytes;
        for (const t of region.branches[k].reads) reads.add(t);
      });
      if (!any) continue;
      let inBytes = 0;
      for (const t of reads) inBytes += p.tensors[t].bytes;
      const end = region.join ?? region.end;
      const start = tx(from, s, inBytes) + p.startCost[s][region.start] + p.endCost[s][end] + compute;
      worst = Math.max(worst, start + tx(s, to, outBytes));
    }
    return worst + joinTime;
  };
  const count = D ** K;
  if (count <= EXACT_PLACEMENTS) {
    let best: BranchPlacement = { devices: new Array(K).fill(from), time: Infinity };
    const a = new Array<number>(K).fill(0);
    for (let m = 0; m < count; m++) {
      let r = m;
      for (let k = 0; k < K; k++) {
        a[k] = r % D;
        r = Math.floor(r / D);
      }
      const time = priceOf(a);
      if (time < best.time) best = { devices: [...a], time };
    }
    return { ...best, exact: true };
  }
  const devices = new Array<number>(K).fill(-1);
  const byWork = [...region.branches.keys()].sort((u, v) => work[v][0] - work[u][0]);
  for (const k of byWork) {
    let bestD = 0;
    let bestT = Infinity;
    for (let d = 0; d < D; d++) {
      devices[k] = d;
      const t = priceOf(devices); // branches not placed yet (-1) count nowhere
      if (t < bestT) {
        bestT = t;
        bestD = d;
      }
    }
    devices[k] = bestD;
  }
  return { devices, time: priceOf(devices), exact: false };
}
