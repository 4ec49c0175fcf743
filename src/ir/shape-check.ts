import type { Graph, TensorType } from "./graph.js";
import { observeWithOrt } from "./shape-observe.js";

/** A tensor whose inferred type differs from what onnxruntime produced (undefined: absent on that side). */
export interface ShapeMismatch {
  tensor: string;
  /** Producing node and its op type. */
  node: string;
  op: string;
  inferred: TensorType | undefined;
  actual: TensorType | undefined;
}

/** Outcome of {@link checkShapesWithOrt}. */
export interface ShapeCheck {
  /** Node outputs compared. */
  checked: number;
  mismatches: ShapeMismatch[];
}

const same = (a: TensorType, b: TensorType) =>
  a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

/**
 * Compares inferred types with reality: exposes every node output of the main graph as a graph output, runs
 * the model once in onnxruntime on seeded random inputs of the inferred input types, and reports each tensor
 * whose dims or dtype differ. Meant for tests and for `--verify`-style diagnostics, not the hot path.
 */
export async function checkShapesWithOrt(
  graph: Graph,
  types: ReadonlyMap<string, TensorType>,
): Promise<ShapeCheck> {
  const names: string[] = [];
  const producer = new Map<string, { node: string; op: string }>();
  for (const n of graph.nodes) {
    for (const o of n.outputs) {
      if (o === "") continue;
      names.push(o);
      producer.set(o, { node: n.name, op: n.op });
    }
  }
  const observed = await observeWithOrt(graph, types, names);
  const mismatches: ShapeMismatch[] = [];
  for (const name of names) {
    const inferred = types.get(name);
    const actual = observed.get(name)?.type;
    if (inferred === undefined && actual === undefined) continue;
    if (inferred && actual && same(inferred, actual)) continue;
    mismatches.push({ tensor: name, ...producer.get(name)!, inferred, actual });
  }
  return { checked: names.length, mismatches };
}
