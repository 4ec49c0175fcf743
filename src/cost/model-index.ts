import type { AnalyzedModel } from "../ir/analyze.js";
import { typeBytes } from "../ir/graph.js";

/**
 * A model's graph in the integer form that segment pricing needs in its inner loops: tensors numbered, per
 * node the activations it reads (deduplicated, weights left out), the weights it reads, and what it writes;
 * per tensor its bytes, producer and consumers. Built once per model ({@link modelIndex}).
 */
export interface ModelIndex {
  /** Per node: activations it reads (inputs and subgraph captures, each once; no weights). */
  reads: readonly Int32Array[];
  /** Per node: weights it reads (initializers and Constant outputs), each once. */
  weightReads: readonly Int32Array[];
  /** Per node: tensors it writes (non-empty outputs). */
  writes: readonly Int32Array[];
  /** Per tensor: bytes (0 when its type is unknown). */
  bytes: Float64Array;
  /** Per tensor: producing node, -1 for graph inputs and initializers. */
  producer: Int32Array;
  /** Per tensor: nodes reading it (each once). */
  consumers: readonly Int32Array[];
  /** Per tensor: 1 when it is a graph output. */
  isOutput: Uint8Array;
  /** Per node: 1 for Constant nodes (their outputs are weights). */
  isConstant: Uint8Array;
}

const indexes = new WeakMap<AnalyzedModel, ModelIndex>();

/** The {@link ModelIndex} of a model (cached per model object). */
export function modelIndex(model: AnalyzedModel): ModelIndex {
  const known = indexes.get(model);
  if (known) return known;
  const { graph, types } = model;
  const id = new Map<string, number>();
  const bytes: number[] = [];
  const producer: number[] = [];
  const consumers: Int32Array[] = [];
  const isOutput: number[] = [];
  const tensor = (name: string): number => {
    let t = id.get(name);
    if (t !== undefined) return t;
    const v = graph.values.get(name)!;
    t = bytes.length;
    id.set(name, t);
    bytes.push(typeBytes(types.get(name)));
    producer.push(v.producer ? v.producer.index : -1);
    consumers.push(Int32Array.from(v.consumers, (c) => c.index));
    isOutput.push(v.isOutput ? 1 : 0);
    return t;
  };
  const reads: Int32Array[] = [];
  const weightReads: Int32Array[] = [];
  const writes: Int32Array[] = [];
  for (const node of graph.nodes) {
    const r: number[] = [];
    const w: number[] = [];
    for (const name of new Set([...node.inputs, ...node.implicitInputs])) {
      if (name === "") continue;
      (graph.isWeight(name) ? w : r).push(tensor(name));
    }
    reads.push(Int32Array.from(r));
    weightReads.push(Int32Array.from(w));
    writes.push(
      Int32Array.from(
        node.outputs.filter((o) => o !== ""),
        tensor,
      ),
    );
  }
  const index: ModelIndex = {
    reads,
    weightReads,
    writes,
    bytes: Float64Array.from(bytes),
    producer: Int32Array.from(producer),
    consumers,
    isOutput: Uint8Array.from(isOutput),
    isConstant: Uint8Array.from(graph.nodes, (nd) => (nd.isConstant ? 1 : 0)),
  };
  indexes.set(model, index);
  return index;
}
