import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { PartitionOrder } from "./order.js";

/**
 * Stage of every graph node (indexed like `graph.nodes`); -1 for Constant nodes, which go to every stage
 * that reads them. Stages are numbered 0..count-1 and data only flows from lower to higher stages.
 */
export interface StageAssignment {
  stageOf: Int32Array;
  count: number;
}

/** Assignment from k-1 increasing boundaries (cut indices, 1..n-1) of a partition order. */
export function assignByBoundaries(
  model: AnalyzedModel,
  order: PartitionOrder,
  boundaries: readonly number[],
): StageAssignment {
  const n = order.nodes.length;
  boundaries.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 1 || b > n - 1) {
      throw new ArgumentError(
        `cut ${b} is out of range: cut indices run from 1 to ${n - 1}`,
        { field: "cuts" },
        "BAD_CUT",
      );
    }
    if (i > 0 && b <= boundaries[i - 1]) {
      const what = b === boundaries[i - 1] ? "repeats" : "comes before";
      throw new ArgumentError(
        `cut ${b} ${what} cut ${boundaries[i - 1]}: cuts must be in increasing order, and each stage needs at least one node`,
        { field: "cuts" },
        "BAD_CUT",
      );
    }
  });
  const stageOf = new Int32Array(model.graph.nodes.length).fill(-1);
  let s = 0;
  order.nodes.forEach((node, pos) => {
    while (s < boundaries.length && pos >= boundaries[s]) s++;
    stageOf[node] = s;
  });
  return { stageOf, count: boundaries.length + 1 };
}

/**
 * Assignment from cut tensors: stage i holds what is needed to compute the i-th tensor and was not needed
 * for an earlier one; the last stage holds the rest. A tensor already computed before an earlier cut means the
 * cuts are out of order.
 */
export function assignByTensors(model: AnalyzedModel, tensors: readonly string[]): StageAssignment {
  const { graph } = model;
  const stageOf = new Int32Array(graph.nodes.length).fill(-1);
  const k = tensors.length + 1;
  for (const node of graph.nodes) if (!node.isConstant) stageOf[node.index] = k - 1;
  tensors.forEach((name, i) => {
    const v = graph.values.get(name);
    if (!v) {
      throw new ArgumentError(
        `cut tensor '${name}' is not a tensor of ${graph.source}`,
        { tensor: name, field: "cuts" },
        "BAD_CUT",
      );
    }
    if (!v.producer || v.producer.isConstant) {
      throw new ArgumentError(
        `cut tensor '${name}' is a graph input or weight, not a computed tensor`,
        { tensor: name },
        "BAD_CUT",
      );
    }
    const claimed = stageOf[v.producer.index];
    if (claimed < i) {
      throw new ArgumentError(
        `cuts out of order: '${name}' is already computed before the earlier cut '${tensors[claimed]}' (list cuts from input to output)`,
        { tensor: name, field: "cuts" },
        "BAD_CUT",
      );
    }
    // Ancestors of the tensor not already claimed by an earlier stage go to stage i.
    const stack = [v.producer.index];
    const seen = new Set<number>();
    while (stack.length > 0) {
      const idx = stack.pop()!;
      if (seen.has(idx)) continue;
      seen.add(idx);
      const node = graph.nodes[idx];
      if (node.isConstant) continue;
      if (stageOf[idx] < i) continue; // already in an earlier stage: its ancestors are too
      stageOf[idx] = i;
      for (const inp of [...node.inputs, ...node.implicitInputs]) {
        const p = inp === "" ? undefined : graph.values.get(inp)?.producer;
        if (p) stack.push(p.index);
      }
    }
  });
  return { stageOf, count: k };
}

/**
 * Checks an assignment: every compute node in a stage 0..count-1, no stage empty, and data flowing only
 * forward. Throws an ArgumentError naming the stage or the two nodes at fault.
 */
export function validateAssignment(model: AnalyzedModel, a: StageAssignment): void {
  const { graph } = model;
  const sizes = new Array<number>(a.count).fill(0);
  for (const node of graph.nodes) {
    if (node.isConstant) continue;
    const s = a.stageOf[node.index];
    if (!Number.isInteger(s) || s < 0 || s >= a.count) {
      throw new ArgumentError(
        `node '${node.name}' has no valid stage (got ${s}, stages 0..${a.count - 1})`,
        { node: node.name },
        "BAD_CUT",
      );
    }
    sizes[s]++;
    for (const inp of [...node.inputs, ...node.implicitInputs]) {
      const p = inp === "" ? undefined : graph.values.get(inp)?.producer;
      if (p && !p.isConstant && a.stageOf[p.index] > s) {
        throw new ArgumentError(
          `data would flow backwards: node '${p.name}' (stage ${a.stageOf[p.index]}) feeds node '${node.name}' (stage ${s}) through '${inp}'`,
          { node: node.name, tensor: inp },
          "BAD_CUT",
        );
      }
    }
  }
  const empty = sizes.indexOf(0);
  if (empty >= 0) {
    throw new ArgumentError(
      `stage ${empty} would be empty: every stage needs at least one node`,
      { stage: empty },
      "BAD_CUT",
    );
  }
}
