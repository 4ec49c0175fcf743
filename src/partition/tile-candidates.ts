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
  // The end of the order is a boundary when the graph has one output, made by the last node.
  const last = order.nodes[order.nodes.length - 1];
  const lastOut = model.graph.nodes[last].outputs[0];
  const outputs = model.graph.outputs;
  if (rank4(lastOut) && outputs.length === 1 && outputs[0].name === lastOut)
    out.set(order.nodes.length, lastOut);
  return out;
}

/** Position in `order` of the first node making a graph output (the order's length when none does). */
export function firstOutputPosition(model: AnalyzedModel, order: PartitionOrder): number {
  const q = order.nodes.findIndex((i) => makesOutput(model, model.graph.nodes[i].outputs));
  return q < 0 ? order.nodes.length : q;
}

function makesOutput(model: AnalyzedModel, names: readonly string[]): boolean {
  return names.some((o) => o !== "" && model.graph.values.get(o)?.isOutput === true);
}

/** True when node i's only graph output, if any, is `to`. */
function onlyOutput(model: AnalyzedModel, i: number, to: string): boolean {
  return model.graph.nodes[i].outputs.every((o) => o === to || model.graph.values.get(o)?.isOutput !== true);
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
  // A layer making a graph output stays out of a stack unless it makes the stack's end tensor (the tiled
  // rewrite keeps only what lies between `from` and `to`, and a stack tensor leaves it only as `to`).
  const spatial = order.nodes.map((i) => isSpatialOp(model.graph.nodes[i].op));
  const inner = order.nodes.map((i, q) => spatial[q] && !makesOutput(model, model.graph.nodes[i].outputs));
  // Prefix sums: layers that cannot be inside a stack, and MACs, up to each position.
  const bad = [0];
  const macs = [0];
  order.nodes.forEach((i, q) => {
    bad.push(bad[q] + (inner[q] ? 0 : 1));
    macs.push(macs[q] + model.costs[i].macs);
  });
  const out: TileCandidate[] = [];
  for (let x = 0; x < bounds.length; x++) {
    for (let y = x + 1; y < bounds.length && y - x <= maxSpan; y++) {
      const [start, from] = bounds[x];
      const [end, to] = bounds[y];
      if (bad[end - 1] - bad[start] > 0) break;
      const lastNode = order.nodes[end - 1];
      if (!spatial[end - 1] || !onlyOutput(model, lastNode, to)) {
        if (!spatial[end - 1]) break;
        continue;
      }
      out.push({ from, to, start, end, macs: macs[end] - macs[start] });
    }
  }
  return out;
}
