import type { ModelProto } from "onnx-buf";
import { loadModel } from "../onnx/model-io.js";
import { type NodeCost, nodeCosts, sumCosts } from "./cost.js";
import { foldModel, type UndecidedIf } from "./fold.js";
import { Graph, type TensorType } from "./graph.js";
import { checkInputValues, type GivenInput, type InputValue, shapesFromValues } from "./input-values.js";
import { inferShapes } from "./shape-infer.js";
import { resolveInputTypes } from "./shape-inputs.js";

/** Options for {@link analyzeModel}. */
export interface AnalyzeOptions {
  /** Fixed shapes for graph inputs, by input name (fills symbolic dimensions). */
  inputShapes?: Record<string, number[]>;
  /**
   * Values of graph inputs, by input name (`--input-value`, `--inputs`): they decide `If` conditions and
   * are fed wherever cleave runs the model. A value of a symbolic-shaped input also fixes its shape.
   */
  inputValues?: Record<string, InputValue>;
  /** Name used in error messages when a ModelProto is passed. */
  source?: string;
  /** Keep constant subgraphs and decidable `If`s as they are (default false: fold and inline). */
  noFold?: boolean;
}

/** A model with its validated graph, every tensor's type, and every node's cost. */
export interface AnalyzedModel {
  /** The graph cleave works on: constant subgraphs folded into initializers, decided `If`s inlined. */
  readonly graph: Graph;
  /** Type of every value of the main graph (inputs, initializers, node outputs). */
  readonly types: ReadonlyMap<string, TensorType>;
  /** Cost of each node, indexed like `graph.nodes`. */
  readonly costs: readonly NodeCost[];
  /** Sum over all nodes. */
  readonly totals: NodeCost;
  /** Given input values, checked against the inputs' types (empty when none were given). */
  readonly inputValues: ReadonlyMap<string, GivenInput>;
  /** What folding did: nodes folded, bytes of the weights it made, Ifs inlined and Ifs left whole. */
  readonly folding: {
    folded: number;
    foldedBytes: number;
    inlined: readonly string[];
    undecided: readonly UndecidedIf[];
  };
  /** Warnings for the user (one line each): `If`s left whole and the inputs that would decide them. */
  readonly warnings: readonly string[];
}

/**
 * Loads (when given a path), validates, folds constant subgraphs and decidable `If`s (see `foldModel`),
 * infers shapes and prices every node of a model. Input mistakes (shapes, values) are ArgumentErrors
 * naming the input.
 */
export async function analyzeModel(
  model: string | ModelProto,
  opts: AnalyzeOptions = {},
): Promise<AnalyzedModel> {
  const source = typeof model === "string" ? model : (opts.source ?? "model");
  const proto = typeof model === "string" ? loadModel(model) : model;
  const raw = new Graph(proto, { source });
  const given = opts.inputValues ?? {};
  const inputShapes = shapesFromValues(raw, given, opts.inputShapes);
  const inputTypes = resolveInputTypes(raw, inputShapes);
  const inputValues = checkInputValues(raw, inputTypes, given);
  const fold = opts.noFold
    ? { graph: raw, folded: 0, foldedBytes: 0, inlined: [], undecided: [] }
    : await foldModel(raw, { inputTypes, inputValues });
  const { graph } = fold;
  const types = await inferShapes(graph, { inputShapes, inputValues });
  const costs = nodeCosts(graph, types);
  const warnings = fold.undecided.map((u) =>
    u.inputs.length > 0
      ? `${source}: If node '${u.node}' stays one node (its branches cannot be costed or cut): its condition depends on input${u.inputs.length > 1 ? "s" : ""} ${u.inputs.map((i) => `'${i}'`).join(", ")}; give ${u.inputs.length > 1 ? "their values" : "its value"} with ${u.inputs.map((i) => `--input-value ${i}=VALUE`).join(" ")} to inline the taken branch`
      : `${source}: If node '${u.node}' stays one node (its branches cannot be costed or cut): its condition is not known before running`,
  );
  return {
    graph,
    types,
    costs,
    totals: sumCosts(costs),
    inputValues,
    folding: {
      folded: fold.folded,
      foldedBytes: fold.foldedBytes,
      inlined: fold.inlined,
      undecided: fold.undecided,
    },
    warnings,
  };
}
