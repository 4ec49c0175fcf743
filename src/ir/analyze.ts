import type { ModelProto } from "onnx-buf";
import { loadModel } from "../onnx/model-io.js";
import { type NodeCost, nodeCosts, sumCosts } from "./cost.js";
import { Graph, type TensorType } from "./graph.js";
import { inferShapes } from "./shape-infer.js";

/** Options for {@link analyzeModel}. */
export interface AnalyzeOptions {
  /** Fixed shapes for graph inputs, by input name (fills symbolic dimensions). */
  inputShapes?: Record<string, number[]>;
  /** Name used in error messages when a ModelProto is passed. */
  source?: string;
}

/** A model with its validated graph, every tensor's type, and every node's cost. */
export interface AnalyzedModel {
  readonly graph: Graph;
  /** Type of every value of the main graph (inputs, initializers, node outputs). */
  readonly types: ReadonlyMap<string, TensorType>;
  /** Cost of each node, indexed like `graph.nodes`. */
  readonly costs: readonly NodeCost[];
  /** Sum over all nodes. */
  readonly totals: NodeCost;
}

/** Loads (when given a path), validates, infers shapes and prices every node of a model. */
export async function analyzeModel(
  model: string | ModelProto,
  opts: AnalyzeOptions = {},
): Promise<AnalyzedModel> {
  const source = typeof model === "string" ? model : (opts.source ?? "model");
  const proto = typeof model === "string" ? loadModel(model) : model;
  const graph = new Graph(proto, { source });
  const types = await inferShapes(graph, { inputShapes: opts.inputShapes });
  const costs = nodeCosts(graph, types);
  return { graph, types, costs, totals: sumCosts(costs) };
}
