import type { Graph, TensorType } from "./graph.js";

/** Options for {@link inferShapes}. */
export interface InferOptions {
  /** Fixed shapes for graph inputs by name; a lone symbolic batch dimension defaults to 1. */
  inputShapes?: Record<string, number[]>;
}

/** Type of every value of the graph. PLACEHOLDER: implemented in the shape/cost work. */
export async function inferShapes(graph: Graph, opts: InferOptions = {}): Promise<Map<string, TensorType>> {
  void graph;
  void opts;
  return new Map();
}
