import { create } from "@bufbuild/protobuf";
import { type GraphProto, type ModelProto, ValueInfoProtoSchema } from "onnx-buf";
import { errorMessage, RuntimeFault } from "../errors.js";
import { isDType } from "../onnx/dtype.js";
import { createSession, type ort } from "../onnx/ort.js";
import type { Graph, TensorType } from "./graph.js";
import { type GivenInput, inputTensor } from "./input-values.js";
import { MAX_CONST_ELEMENTS } from "./shape-context.js";
import { isIntegral } from "./shape-fold.js";

/** A tensor as onnxruntime produced it: its type and, for small integer/bool tensors, its values. */
export interface ObservedTensor {
  type: TensorType;
  /** Values of integer or bool tensors of at most {@link MAX_CONST_ELEMENTS} elements. */
  values?: number[];
}

/** Options for {@link observeWithOrt}. */
export interface ObserveOptions {
  /** Seed of the random inputs (input k gets seed + k). Default 1. */
  seed?: number;
  /** Given values of inputs (others get the feeds {@link inputTensor} makes). */
  inputValues?: ReadonlyMap<string, GivenInput>;
}

/**
 * A copy of the model whose graph also outputs `names` (untyped ValueInfos, which onnxruntime accepts). The
 * original model is not modified; node, initializer and other arrays are shared, not copied.
 */
export function withExtraOutputs(model: ModelProto, names: readonly string[]): ModelProto {
  const g = model.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  const extra = names.filter((n) => !existing.has(n)).map((name) => create(ValueInfoProtoSchema, { name }));
  const graph: GraphProto = { ...g, output: [...g.output, ...extra] };
  return { ...model, graph };
}

/**
 * Runs the model once in onnxruntime (CPU, graph optimizations off so every tensor exists as written) on
 * the given input values, else zeros for integer inputs and seeded random floats, of the given types, and returns the actual type of each requested tensor. Requested
 * names must be node outputs of the main graph; a name whose value is not a tensor (a sequence, say) maps to
 * undefined. Throws a RuntimeFault when onnxruntime cannot load or run the model.
 */
export async function observeWithOrt(
  graph: Graph,
  inputTypes: ReadonlyMap<string, TensorType>,
  names: readonly string[],
  opts: ObserveOptions = {},
): Promise<Map<string, ObservedTensor | undefined>> {
  const wanted = [...new Set(names)].filter((n) => graph.values.get(n)?.kind === "node");
  const model = withExtraOutputs(graph.model, wanted);
  const session = await createSession(model, { optimization: "disabled", source: graph.source });
  const seed = opts.seed ?? 1;
  const feeds: Record<string, ort.Tensor> = {};
  graph.inputs.forEach((v, k) => {
    const t = inputTypes.get(v.name);
    if (!t)
      throw new RuntimeFault("RUNTIME", `${graph.source}: no type for input '${v.name}'`, { tensor: v.name });
    feeds[v.name] = inputTensor(v.name, t, opts.inputValues, seed + k);
  });
  const result = new Map<string, ObservedTensor | undefined>();
  try {
    const out = await session.run(feeds, wanted);
    for (const name of wanted) result.set(name, toObserved(out[name]));
  } catch (err) {
    throw new RuntimeFault(
      "RUNTIME",
      `${graph.source}: onnxruntime failed to run the model (${errorMessage(err)})`,
      {
        file: graph.source,
      },
    );
  } finally {
    await session.release();
  }
  return result;
}

function toObserved(v: unknown): ObservedTensor | undefined {
  if (!v || typeof v !== "object" || !("dims" in v) || !("type" in v)) return undefined;
  const t = v as ort.Tensor;
  if (!isDType(t.type)) return undefined;
  const type: TensorType = { dtype: t.type, shape: t.dims.map((d) => Number(d)) };
  if (t.size <= MAX_CONST_ELEMENTS && isIntegral(type.dtype)) {
    return { type, values: Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x)) };
  }
  return { type };
}
