import { create } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type TensorProto,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "onnx-buf";
import { type DType, dtypeToOnnx } from "./dtype.js";
import { seededRandom } from "./prng.js";
import { makeTensor, numel, type TypedArray } from "./tensor.js";

export { seededRandom };

/** A float attribute that happens to be integral (1.0): plain integers become INT attributes. */
export interface FloatAttr {
  float: number;
}
/** Attribute values accepted by {@link GraphBuilder.node}. */
export type AttrValue = number | number[] | string | string[] | FloatAttr | TensorProto | GraphProto;

/** A dimension: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

/** Builds an ONNX `ValueInfoProto` for a tensor of a dtype and shape (symbolic dims allowed). */
export function valueInfo(name: string, dtype: DType, shape?: readonly Dim[]): ValueInfoProto {
  const dims = shape?.map((d) =>
    create(
      TensorShapeProto_DimensionSchema,
      typeof d === "number"
        ? { value: { case: "dimValue", value: BigInt(d) } }
        : { value: { case: "dimParam", value: d } },
    ),
  );
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType: dtypeToOnnx(dtype),
          shape: dims ? create(TensorShapeProtoSchema, { dim: dims }) : undefined,
        }),
      },
    }),
  });
}

/** Builds an AttributeProto, choosing its type from the JS value. */
export function attribute(name: string, v: AttrValue): AttributeProto {
  const enc = new TextEncoder();
  if (typeof v === "number") {
    return Number.isInteger(v)
      ? create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) })
      : create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v });
  }
  if (typeof v === "string") return create(AttributeProtoSchema, { name, type: AT.STRING, s: enc.encode(v) });
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === "string")) {
      return create(AttributeProtoSchema, {
        name,
        type: AT.STRINGS,
        strings: (v as string[]).map((s) => enc.encode(s)),
      });
    }
    const nums = v as number[];
    return nums.every((x) => Number.isInteger(x))
      ? create(AttributeProtoSchema, { name, type: AT.INTS, ints: nums.map((x) => BigInt(x)) })
      : create(AttributeProtoSchema, { name, type: AT.FLOATS, floats: nums });
  }
  if ("float" in v) return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.float });
  if (v.$typeName === "onnx.TensorProto")
    return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: v });
  return create(AttributeProtoSchema, { name, type: AT.GRAPH, g: v });
}

/** How {@link GraphBuilder.weight} fills a float32 weight. */
export type WeightInit =
  | "he" // uniform with the variance of He init over fan-in = prod(shape[1:]); keeps activations bounded
  | "zeros"
  | "ones"
  | { uniform: [number, number] };

/**
 * Imperative builder of ONNX graphs, used by the model zoo and by tests. Names are unique by
 * construction (a counter suffix); weights are seeded pseudo-random float32.
 */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  private readonly rand: () => number;
  private readonly used = new Set<string>();
  private readonly usedNodes = new Set<string>();

  constructor(
    readonly name: string,
    readonly opts: { opset?: number; seed?: number } = {},
  ) {
    this.rand = seededRandom(opts.seed ?? 1);
  }

  /** A tensor name not used before in this graph, derived from `base`. */
  fresh(base: string): string {
    return takeFresh(this.used, base);
  }

  /** Declares a graph input and returns its name. */
  input(name: string, dtype: DType, shape: readonly Dim[]): string {
    const n = this.fresh(name);
    this.inputs.push(valueInfo(n, dtype, shape));
    return n;
  }

  /** Declares a graph output (an existing tensor). */
  output(name: string, dtype: DType = "float32", shape?: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, dtype, shape));
  }

  /** Adds an initializer from raw data and returns its name. */
  constant(name: string, dtype: DType, dims: readonly number[], data: TypedArray): string {
    const n = this.fresh(name);
    this.initializers.push(makeTensor(n, dtype, dims, data));
    return n;
  }

  /** Adds an int64 initializer (shapes, axes, pads). */
  ints(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(name, "int64", dims, BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  /** Adds a float32 weight initialized by `init` and returns its name. */
  weight(name: string, shape: readonly number[], init: WeightInit = "he"): string {
    const n = numel(shape);
    const data = new Float32Array(n);
    if (init === "ones") data.fill(1);
    else if (init === "he") {
      const fanIn = shape.length > 1 ? numel(shape.slice(1)) : shape[0];
      const bound = Math.sqrt(6 / Math.max(1, fanIn));
      for (let i = 0; i < n; i++) data[i] = (this.rand() * 2 - 1) * bound;
    } else if (init !== "zeros") {
      const [lo, hi] = init.uniform;
      for (let i = 0; i < n; i++) data[i] = lo + this.rand() * (hi - lo);
    }
    return this.constant(name, "float32", shape, data);
  }

  /** Adds a node with `nOut` outputs and returns their names. */
  nodeN(
    op: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue | undefined> = {},
    nOut = 1,
    name?: string,
  ): string[] {
    // Node and tensor names are separate namespaces in ONNX: node `conv1` writes tensor `conv1`.
    const nodeName = takeFresh(this.usedNodes, name ?? op.toLowerCase());
    const outputs = Array.from({ length: nOut }, (_, i) =>
      this.fresh(nOut === 1 ? nodeName : `${nodeName}_${i}`),
    );
    const attribute_ = Object.entries(attrs)
      .filter((e): e is [string, AttrValue] => e[1] !== undefined)
      .map(([k, v]) => attribute(k, v));
    this.nodes.push(
      create(NodeProtoSchema, {
        name: nodeName,
        opType: op,
        input: [...inputs],
        output: outputs,
        attribute: attribute_,
      }),
    );
    return outputs;
  }

  /** Adds a single-output node and returns the output's name. */
  node(
    op: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue | undefined> = {},
    name?: string,
  ): string {
    return this.nodeN(op, inputs, attrs, 1, name)[0];
  }

  /** The graph built so far. */
  toGraph(): GraphProto {
    return create(GraphProtoSchema, {
      name: this.name,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    });
  }

  /** The model built so far (IR version 8, default-domain opset `opts.opset ?? 17`). */
  toModel(): ModelProto {
    return create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: "cleave",
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(this.opts.opset ?? 17) })],
      graph: this.toGraph(),
    });
  }
}

function takeFresh(used: Set<string>, base: string): string {
  let name = base;
  for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
  used.add(name);
  return name;
}
