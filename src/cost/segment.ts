import type { AnalyzedModel } from "../ir/analyze.js";
import { typeBytes } from "../ir/graph.js";

/** Activation bytes a segment reads from outside (graph inputs or other stages) and hands on. */
export interface SegmentIO {
  /** Bytes of the distinct activations the segment reads but does not produce (weights excluded). */
  bytesIn: number;
  /** Bytes of the tensors it produces that a node outside it reads or that are graph outputs. */
  bytesOut: number;
  /**
   * Bytes of boundary tensors (not graph inputs) read or produced by a node for which `blocked(node)` holds:
   * the layout conversions a boundary inside a run of blocked-layout kernels adds.
   */
  bytesBlocked: number;
}

/** A membership mask of `nodes` over the graph's nodes. */
export function nodeMask(model: AnalyzedModel, nodes: readonly number[]): Uint8Array {
  const mask = new Uint8Array(model.graph.nodes.length);
  for (const i of nodes) mask[i] = 1;
  return mask;
}

/** Input and output activation bytes of running `nodes` (graph node indices) as one stage. */
export function segmentIO(
  model: AnalyzedModel,
  nodes: readonly number[],
  mask = nodeMask(model, nodes),
  blocked: (node: number) => boolean = () => false,
): SegmentIO {
  const { graph, types } = model;
  const seenIn = new Set<string>();
  const blockedIn = new Set<string>();
  let bytesIn = 0;
  let bytesOut = 0;
  let bytesBlocked = 0;
  for (const i of nodes) {
    const node = graph.nodes[i];
    if (node.isConstant) continue;
    for (const t of [...node.inputs, ...node.implicitInputs]) {
      if (t === "" || graph.isWeight(t)) continue;
      const v = graph.values.get(t);
      const p = v?.producer;
      if (p && mask[p.index]) continue;
      if (!seenIn.has(t)) {
        seenIn.add(t);
        bytesIn += typeBytes(types.get(t));
      }
      if (p && !blockedIn.has(t) && blocked(i)) {
        blockedIn.add(t);
        bytesBlocked += typeBytes(types.get(t));
      }
    }
    for (const t of node.outputs) {
      if (t === "") continue;
      const v = graph.values.get(t);
      if (!v) continue;
      if (v.isOutput || v.consumers.some((c) => !mask[c.index])) {
        bytesOut += typeBytes(types.get(t));
        if (blocked(i)) bytesBlocked += typeBytes(types.get(t));
      }
    }
  }
  return { bytesIn, bytesOut, bytesBlocked };
}

/** Memory a segment needs, bytes, split into its parts. */
export interface SegmentMemory {
  /** Distinct weights (initializers and Constant outputs) its nodes read. */
  weights: number;
  /** Largest set of activations live at once when its nodes run in graph order. */
  activations: number;
}

/**
 * Weights and peak live activations of running `nodes` in graph order. A tensor is live from its producer
 * (or from the start, for tensors read from outside) until its last reader in the segment; tensors handed
 * on to other stages or returned stay live to the end. While a node runs, its inputs and outputs are live.
 */
export function segmentMemory(model: AnalyzedModel, nodes: readonly number[]): SegmentMemory {
  const { graph, types } = model;
  const order = [...nodes].sort((a, b) => a - b);
  const mask = nodeMask(model, order);
  const uses = new Map<string, number>();
  const weightSeen = new Set<string>();
  let weights = 0;
  let live = 0;
  for (const i of order) {
    const node = graph.nodes[i];
    if (node.isConstant) {
      for (const t of node.outputs) {
        if (t !== "" && !weightSeen.has(t)) {
          weightSeen.add(t);
          weights += typeBytes(types.get(t));
        }
      }
      continue;
    }
    for (const t of new Set([...node.inputs, ...node.implicitInputs])) {
      if (t === "") continue;
      if (graph.isWeight(t)) {
        if (!weightSeen.has(t)) {
          weightSeen.add(t);
          weights += typeBytes(types.get(t));
        }
        continue;
      }
      if (!uses.has(t)) {
        const p = graph.values.get(t)?.producer;
        if (!p || !mask[p.index]) live += typeBytes(types.get(t)); // read from outside: live from the start
      }
      uses.set(t, (uses.get(t) ?? 0) + 1);
    }
  }
  // Produced here and handed on (to a later stage or the caller): live to the end.
  const keep = (t: string) => {
    const v = graph.values.get(t);
    if (!v?.producer || !mask[v.producer.index]) return false;
    return v.isOutput || v.consumers.some((c) => !mask[c.index]);
  };
  let peak = live;
  for (const i of order) {
    const node = graph.nodes[i];
    if (node.isConstant) continue;
    for (const t of node.outputs) if (t !== "") live += typeBytes(types.get(t));
    peak = Math.max(peak, live);
    for (const t of new Set([...node.inputs, ...node.implicitInputs])) {
      const left = uses.get(t);
      if (left === undefined) continue;
      uses.set(t, left - 1);
      if (left === 1 && !keep(t)) live -= typeBytes(types.get(t));
    }
    // Outputs nobody in the segment reads and nobody outside needs die at once.
    for (const t of node.outputs) if (t !== "" && !uses.has(t) && !keep(t)) live -= typeBytes(types.get(t));
  }
  return { weights, activations: peak };
}
