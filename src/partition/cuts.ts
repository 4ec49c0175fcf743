import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { liveSpans, type PartitionOrder } from "./order.js";

/**
 * A boundary in a partition order: everything before position `index` runs in an earlier stage than
 * everything from `index` on. `tensors` are the activations that cross it.
 */
export interface Cut {
  /** Boundary position, 1..n-1: the cut lies between order positions index-1 and index. */
  index: number;
  /** Name of the last node before the cut. */
  after: string;
  /** Activations crossing the cut (graph inputs needed later count; weights never do), sorted by name. */
  tensors: string[];
  /** Sum of their bytes. */
  bytes: number;
  /** MACs of the nodes before the cut (for balancing). */
  macsBefore: number;
}

/**
 * Every boundary of the order with the tensors crossing it, computed in one sweep over life spans
 * (O(nodes + edges + total output size)), never by re-walking the graph per cut.
 */
export function enumerateCuts(model: AnalyzedModel, order: PartitionOrder): Cut[] {
  const n = order.nodes.length;
  const starts: number[][] = Array.from({ length: n + 1 }, () => []);
  const ends: number[][] = Array.from({ length: n + 1 }, () => []);
  const spans = liveSpans(model, order);
  spans.forEach((s, i) => {
    starts[s.def + 1].push(i); // first boundary crossed
    ends[s.lastUse + 1].push(i); // first boundary no longer crossed
  });
  const live = new Set<number>();
  let bytes = 0;
  let macs = 0;
  const cuts: Cut[] = [];
  for (let b = 0; b < n; b++) {
    for (const i of starts[b]) {
      live.add(i);
      bytes += spans[i].bytes;
    }
    for (const i of ends[b]) {
      live.delete(i);
      bytes -= spans[i].bytes;
    }
    if (b > 0) {
      macs += model.costs[order.nodes[b - 1]].macs;
      const tensors = [...live].map((i) => spans[i].name).sort();
      cuts.push({
        index: b,
        after: model.graph.nodes[order.nodes[b - 1]].name,
        tensors,
        bytes,
        macsBefore: macs,
      });
    }
  }
  return cuts;
}

/** True when exactly one tensor crosses the cut. */
export function isCleanCut(c: Cut): boolean {
  return c.tensors.length === 1;
}

/**
 * Picks k-1 boundaries that split the order into k stages of about equal MACs (each stage non-empty),
 * preferring, among boundaries near each ideal point, the one carrying the fewest bytes.
 */
export function balancedCuts(
  model: AnalyzedModel,
  order: PartitionOrder,
  k: number,
  cuts = enumerateCuts(model, order),
): number[] {
  const n = order.nodes.length;
  if (!Number.isInteger(k) || k < 1)
    throw new ArgumentError(`--stages: expected an integer >= 1, got ${k}`, { field: "stages" });
  if (k > n) {
    throw new ArgumentError(
      `--stages ${k}: the model has only ${n} compute nodes (${cuts.length} cuts), so at most ${n} stages`,
      {
        field: "stages",
      },
    );
  }
  const total = model.costs.reduce((s, c) => s + c.macs, 0);
  const chosen: number[] = [];
  let prev = 0;
  for (let s = 1; s < k; s++) {
    const target = (total * s) / k;
    // Boundaries allowed: after the previous one, leaving at least one node per remaining stage.
    const lo = prev + 1;
    const hi = n - (k - s);
    let best = lo;
    let bestScore = Number.POSITIVE_INFINITY;
    const tolerance = total / k / 20;
    for (let b = lo; b <= hi; b++) {
      const c = cuts[b - 1];
      const dev = Math.abs(c.macsBefore - target);
      // Within 5% of a stage's share, prefer the narrower cut; otherwise, the closer one.
      const score = dev <= tolerance ? c.bytes / 1e12 : dev;
      if (score < bestScore) {
        bestScore = score;
        best = b;
      }
    }
    chosen.push(best);
    prev = best;
  }
  return chosen;
}
