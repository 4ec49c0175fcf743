import type { AnalyzedModel } from "../ir/analyze.js";
import { isSpatialOp } from "../ir/tile-rows.js";
import { enumerateCuts } from "./cuts.js";
import type { PartitionOrder } from "./order.js";

/**
 * A run of the partition order that can become a tile stack: it starts after a cut carrying one NCHW
 * tensor `from` (or at the graph input), ends at a cut carrying one NCHW tensor `to`, and holds only layers
 * that keep spatial locality.
 */
export interface TileCandidate {
  from: string;
  to: string;
  /** Order positions [start, end) of the stack's layers. */
  start: number;
  end: number;
  /** MACs of the stack's layers. */
  macs: number;
}

/**
 * Boundaries where a tile stack may start or end: positions b (0..n) of the order where exactly one NCHW
 * activation crosses (position 0: the graph's single NCHW input). Returns the tensor at each boundary.
 */
export function tileBoundaries(model: AnalyzedModel, order: PartitionOrder): Map<number, string> {
  const out = new Map<number, string>();
  const rank4 = (t: string) => model.types.get(t)?.shape.length === 4;
  const inputs = model.graph.inputs.filter((v) => !model.graph.isWeight(v.name));
  if (inputs.length === 1 && rank4(inputs[0].name)) out.set(0, inputs[0].name);
  for (const c of enumerateCuts(model, order)) {
    if (c.tensors.length === 1 && rank4(c.tensors[0])) out.set(c.index, c.tensors[0]);
  }
  const last = order.nodes[order.nodes.length - 1];
  const lastOut = model.graph.nodes[last].outputs[0];
  if (rank4(lastOut)) out.set(order.nodes.length, lastOut);
  return out;
}

/**
 * Every stack between two tile boundaries whose layers are all spatial, at most `maxSpan` boundaries apart
 * (the candidates the latency planner prices), sorted by start then end.
 */
export function tileCandidates(
  model: AnalyzedModel,
  order: PartitionOrder,
  maxSpan = Infinity,
): TileCandidate[] {
  const bounds = [...tileBoundaries(model, order).entries()].sort((x, y) => x[0] - y[0]);
  const spatial = order.nodes.map((i) => isSpatialOp(model.graph.nodes[i].op));
  // Prefix sums: non-spatial layers and MACs up to each position.
  const bad = [0];
  const macs = [0];
  order.nodes.forEach((i, q) => {
    bad.push(bad[q] + (spatial[q] ? 0 : 1));
    macs.push(macs[q] + model.costs[i].macs);
  });
  const out: TileCandidate[] = [];
  for (let x = 0; x < bounds.length; x++) {
    for (let y = x + 1; y < bounds.length && y - x <= maxSpan; y++) {
      const [start, from] = bounds[x];
      const [end, to] = bounds[y];
      if (bad[end] - bad[start] > 0) break;
      out.push({ from, to, start, end, macs: macs[end] - macs[start] });
    }
  }
  return out;
}
