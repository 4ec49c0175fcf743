import type { Graph, TensorType } from "./graph.js";

/**
 * Cost of one node (or a sum of nodes). Counts, not times: MACs are multiply-accumulates, FLOPs count
 * every arithmetic operation (2 per MAC plus elementwise work), bytes are of the tensors as stored.
 */
export interface NodeCost {
  macs: number;
  flops: number;
  /** Elements of the weights the node reads (initializers and Constant outputs). */
  params: number;
  paramBytes: number;
  /** Bytes of the node's outputs. */
  outputBytes: number;
  /** Bytes the node reads: activations plus weights (for a roofline model). */
  bytesRead: number;
  /** Bytes the node writes (equals outputBytes). */
  bytesWritten: number;
}

/** Cost of every node of `graph`, indexed like `graph.nodes`. PLACEHOLDER: implemented in the shape/cost work. */
export function nodeCosts(graph: Graph, types: ReadonlyMap<string, TensorType>): NodeCost[] {
  void types;
  return graph.nodes.map(() => zeroCost());
}

/** A cost of all zeros. */
export function zeroCost(): NodeCost {
  return { macs: 0, flops: 0, params: 0, paramBytes: 0, outputBytes: 0, bytesRead: 0, bytesWritten: 0 };
}

/** Field-wise sum of costs. */
export function sumCosts(costs: readonly NodeCost[]): NodeCost {
  const t = zeroCost();
  for (const c of costs) {
    t.macs += c.macs;
    t.flops += c.flops;
    t.params += c.params;
    t.paramBytes += c.paramBytes;
    t.outputBytes += c.outputBytes;
    t.bytesRead += c.bytesRead;
    t.bytesWritten += c.bytesWritten;
  }
  return t;
}
