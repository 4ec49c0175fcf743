import { errorMessage, ModelError } from "../errors.js";
import { dtypeFromOnnx } from "../onnx/dtype.js";
import { numel, tensorDims, tensorToNumbers } from "../onnx/tensor.js";
import { Attrs, type Graph, type Node, type TensorType } from "./graph.js";
import {
  type ConstValue,
  type FoldRule,
  fmtShape,
  MAX_CONST_ELEMENTS,
  type RuleContext,
  type ShapeRule,
  ShapeError,
  ShapeUnknown,
} from "./shape-context.js";
import type { GivenInput } from "./input-values.js";
import { resolveInputTypes } from "./shape-inputs.js";
import { type ObservedTensor, observeWithOrt } from "./shape-observe.js";
import { CONSTANT_FOLDS, CONSTANT_RULES } from "./shape-ops-constant.js";
import { ELEMENTWISE_FOLDS, ELEMENTWISE_RULES } from "./shape-ops-elementwise.js";
import { INDEX_FOLDS, INDEX_RULES } from "./shape-ops-index.js";
import { LAYOUT_FOLDS, LAYOUT_RULES } from "./shape-ops-layout.js";
import { NN_RULES } from "./shape-ops-nn.js";
import { REDUCE_FOLDS, REDUCE_RULES } from "./shape-ops-reduce.js";

/** Options for {@link inferShapes}. */
export interface InferOptions {
  /** Fixed shapes for graph inputs by name; a lone symbolic batch dimension defaults to 1. */
  inputShapes?: Record<string, number[]>;
  /** Given input values, fed to the onnxruntime fallback. */
  inputValues?: ReadonlyMap<string, GivenInput>;
}

/** Static shape rules of the default ("ai.onnx") domain, by op type. */
const RULES: Readonly<Record<string, ShapeRule>> = {
  ...ELEMENTWISE_RULES,
  ...REDUCE_RULES,
  ...NN_RULES,
  ...CONSTANT_RULES,
  ...LAYOUT_RULES,
  ...INDEX_RULES,
};

/** Constant-folding rules, by op type. */
const FOLDS: Readonly<Record<string, FoldRule>> = {
  ...ELEMENTWISE_FOLDS,
  ...REDUCE_FOLDS,
  ...CONSTANT_FOLDS,
  ...LAYOUT_FOLDS,
  ...INDEX_FOLDS,
};

/** Op types (default domain) that shape inference resolves without running the model. */
export function staticOps(): string[] {
  return Object.keys(RULES).sort();
}

/** A node whose outputs static inference could not determine, and why. */
export interface Unresolved {
  node: string;
  op: string;
  reason: string;
}

/** Result of the static pass: types found, known small values, and the nodes left for the fallback. */
export interface StaticInference {
  types: Map<string, TensorType>;
  /** Values of small constant tensors (initializers read so far, Constant outputs, folded shape arithmetic). */
  values: Map<string, ConstValue>;
  /** Nodes whose inputs were all typed but whose outputs could not be inferred (the root causes). */
  unresolved: Unresolved[];
}

/**
 * Static shape and dtype inference with constant folding of shape arithmetic, never running the model.
 * Tensors downstream of an unresolved node are left out of `types`.
 */
export function inferStatic(graph: Graph, opts: InferOptions = {}): StaticInference {
  const st = new InferState(graph, resolveInputTypes(graph, opts.inputShapes));
  st.pass(undefined);
  return { types: st.types, values: st.values, unresolved: st.unresolved };
}

/**
 * Type of every tensor of the main graph (inputs, initializers, Constant outputs, node outputs). Shapes are
 * inferred statically; tensors it cannot determine (If/Loop, custom domains, data-dependent shapes) are
 * observed in one onnxruntime run on the feeds of `inputFeeds` (given values, zeros, seeded random floats), and static inference continues downstream from
 * them. Input mistakes are ArgumentErrors; inconsistent graphs are ModelErrors (SHAPE_INFERENCE) naming
 * the node. Values that are not tensors (sequences, maps) are left out.
 */
export async function inferShapes(graph: Graph, opts: InferOptions = {}): Promise<Map<string, TensorType>> {
  const inputTypes = resolveInputTypes(graph, opts.inputShapes);
  const st = new InferState(graph, inputTypes);
  st.pass(undefined);
  const missing = st.untypedTensors();
  if (missing.length === 0) return st.types;
  let observed: Map<string, ObservedTensor | undefined>;
  try {
    observed = await observeWithOrt(graph, inputTypes, missing, { inputValues: opts.inputValues });
  } catch (err) {
    const first = st.unresolved[0];
    const what = first
      ? `node '${first.node}' (${first.op}: ${first.reason})${st.unresolved.length > 1 ? ` and ${st.unresolved.length - 1} other nodes` : ""}`
      : `${missing.length} tensors`;
    throw new ModelError(
      "SHAPE_INFERENCE",
      `${graph.source}: cannot infer the shapes of ${what} statically, and onnxruntime could not run the model to observe them: ${errorMessage(err)}`,
      { file: graph.source, node: first?.node },
    );
  }
  st.pass(observed);
  return st.types;
}

/** Mutable state of one inference: types and values found so far. */
class InferState {
  readonly types = new Map<string, TensorType>();
  readonly values = new Map<string, ConstValue>();
  readonly unresolved: Unresolved[] = [];
  private readonly done = new Set<number>();
  /** Weights already checked for a small value (hit or miss), so each is read at most once. */
  private readonly weightTried = new Set<string>();

  constructor(
    private readonly graph: Graph,
    inputTypes: ReadonlyMap<string, TensorType>,
  ) {
    for (const [k, t] of inputTypes) this.types.set(k, t);
    for (const v of graph.values.values()) {
      const init = v.initializer;
      if (!init) continue;
      const dtype = dtypeFromOnnx(init.dataType);
      if (dtype) this.types.set(v.name, { dtype, shape: tensorDims(init) });
    }
  }

  /** Node outputs without a type yet. */
  untypedTensors(): string[] {
    const out: string[] = [];
    for (const n of this.graph.nodes)
      for (const o of n.outputs) if (o !== "" && !this.types.has(o)) out.push(o);
    return out;
  }

  /** True when {@link valueOf} would give a value, without reading any weight. */
  hasValue(name: string): boolean {
    if (this.values.has(name)) return true;
    if (this.weightTried.has(name) || !this.graph.isWeight(name)) return false;
    const t = this.types.get(name);
    if (!t || numel(t.shape) > MAX_CONST_ELEMENTS) return false;
    return t.dtype !== "string" && t.dtype !== "float16" && t.dtype !== "bfloat16";
  }

  /** Known value of a tensor: folded, observed, or read once from a small numeric weight. */
  valueOf(name: string): ConstValue | undefined {
    const v = this.values.get(name);
    if (v || !this.hasValue(name)) return v;
    this.weightTried.add(name);
    const t = this.types.get(name)!;
    const proto = this.graph.constantTensor(name);
    if (!proto) return undefined;
    const cv: ConstValue = { dtype: t.dtype, shape: t.shape, data: tensorToNumbers(proto) };
    this.values.set(name, cv);
    return cv;
  }

  /** One walk over the nodes in topological order; with `observed`, unresolved nodes take onnxruntime's types. */
  pass(observed: Map<string, ObservedTensor | undefined> | undefined): void {
    for (const node of this.graph.nodes) {
      if (this.done.has(node.index)) continue;
      if (this.tryStatic(node, observed === undefined)) {
        this.done.add(node.index);
        continue;
      }
      if (!observed) continue;
      for (const o of node.outputs) {
        const obs = o === "" ? undefined : observed.get(o);
        if (!obs) continue;
        this.types.set(o, obs.type);
        if (obs.values)
          this.values.set(o, { dtype: obs.type.dtype, shape: obs.type.shape, data: obs.values });
      }
      this.done.add(node.index);
    }
  }

  /** Infers a node's outputs statically; false when it cannot (recorded as unresolved when `record`). */
  private tryStatic(node: Node, record: boolean): boolean {
    const ins: (TensorType | undefined)[] = node.inputs.map((n) =>
      n === "" ? undefined : this.types.get(n),
    );
    if (node.inputs.some((n, i) => n !== "" && ins[i] === undefined)) return false;
    const builtin = node.domain === "" || node.domain === "ai.onnx";
    const rule = builtin ? RULES[node.op] : undefined;
    const note = (reason: string) => {
      if (record) this.unresolved.push({ node: node.name, op: node.op, reason });
      return false;
    };
    if (!rule) return note(builtin ? "no static shape rule" : `custom domain '${node.domain}'`);
    const ctx = this.context(node, ins);
    let outs: TensorType[];
    try {
      outs = rule(ctx);
      node.outputs.forEach((o, k) => {
        if (o === "") return;
        const t = outs[k];
        if (!t) throw new ShapeUnknown(`output ${k} is not inferred`);
        if (t.shape.some((d) => !Number.isInteger(d) || d < 0))
          throw new ShapeError(`inferred an invalid shape ${fmtShape(t.shape)} for output '${o}'`);
      });
    } catch (err) {
      if (err instanceof ShapeUnknown) return note(err.message);
      throw this.wrap(node, err);
    }
    node.outputs.forEach((o, k) => {
      if (o !== "") this.types.set(o, outs[k]);
    });
    this.fold(node, ctx, outs);
    return true;
  }

  private fold(node: Node, ctx: RuleContext, outs: TensorType[]): void {
    const fold = FOLDS[node.op];
    if (!fold) return;
    const small = node.outputs.every(
      (o, k) => o === "" || (outs[k].dtype !== "string" && numel(outs[k].shape) <= MAX_CONST_ELEMENTS),
    );
    if (!small) return;
    let res: (number[] | undefined)[] | undefined;
    try {
      res = fold(ctx, outs);
    } catch (err) {
      if (err instanceof ShapeUnknown) return;
      throw this.wrap(node, err);
    }
    node.outputs.forEach((o, k) => {
      const data = res?.[k];
      if (o === "" || !data) return;
      if (data.length !== numel(outs[k].shape))
        throw new Error(
          `constant folding of ${node.op} '${node.name}' produced ${data.length} values for ${fmtShape(outs[k].shape)}`,
        );
      this.values.set(o, { dtype: outs[k].dtype, shape: outs[k].shape, data });
    });
  }

  private wrap(node: Node, err: unknown): unknown {
    if (!(err instanceof ShapeError)) return err;
    return new ModelError(
      "SHAPE_INFERENCE",
      `${this.graph.source}: node '${node.name}' (${node.op}): ${err.message}`,
      {
        file: this.graph.source,
        node: node.name,
      },
    );
  }

  private context(node: Node, ins: (TensorType | undefined)[]): RuleContext {
    let nIn = node.inputs.length;
    while (nIn > 0 && node.inputs[nIn - 1] === "") nIn--;
    return {
      node,
      attrs: new Attrs(node),
      opset: this.graph.opset,
      nIn,
      nOut: node.outputs.length,
      input: (i) => ins[i],
      need: (i) => {
        const t = ins[i];
        if (!t) throw new ShapeError(`input ${i} is required`);
        return t;
      },
      value: (i) => {
        const name = node.inputs[i];
        return name ? this.valueOf(name) : undefined;
      },
      hasValue: (i) => {
        const name = node.inputs[i];
        return name ? this.hasValue(name) : false;
      },
    };
  }
}
