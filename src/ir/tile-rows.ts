import { ArgumentError } from "../errors.js";
import { tensorToNumbers } from "../onnx/tensor.js";
import { Attrs, type Graph, type Node } from "./graph.js";

/**
 * Row ranges of spatial layers, for tiling along height (axis 2 of NCHW tensors). A range is half-open
 * `[a, b)` in the rows of the untiled tensor.
 *
 * For every layer a tile stack may hold, {@link rowRule} answers: to compute output rows `[a, b)`, which rows
 * of each input are read, and how the tile's copy of the layer must be changed (its top and bottom padding, or
 * the extra rows it computes that a Slice then drops). The rules are exact (kernel, stride, padding, dilation,
 * `auto_pad`, `ceil_mode`), so a tile reproduces its rows of the whole model to float rounding.
 */
export interface Rows {
  a: number;
  b: number;
}

/** What one tile's copy of a layer reads and how it is rewritten. */
export interface RowPlan {
  /** Rows each input must hold (null: read whole, e.g. weights or a broadcast [N,C,1,1] tensor). */
  inputs: (Rows | null)[];
  /** Top and bottom padding of the copy (Conv, pooling) in place of the layer's own. */
  pads?: [number, number];
  /** ConvTranspose: the output padding along height of the copy. */
  outputPadding?: number;
  /** The copy computes these rows (a superset of `[a, b)`, which a Slice then keeps); absent: exactly `[a, b)`. */
  computes?: Rows;
}

/** Operators that act on each position alone (any number of inputs, broadcasting allowed). */
const POINTWISE = new Set([
  "Relu",
  "LeakyRelu",
  "PRelu",
  "Elu",
  "Selu",
  "Celu",
  "Sigmoid",
  "HardSigmoid",
  "HardSwish",
  "Tanh",
  "Softplus",
  "Softsign",
  "Mish",
  "Gelu",
  "Erf",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Neg",
  "Abs",
  "Floor",
  "Ceil",
  "Round",
  "Clip",
  "Cast",
  "Identity",
  "Dropout",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Max",
  "Min",
  "Sum",
  "Mean",
  "Where",
  "BatchNormalization",
]);

const WINDOWED = new Set(["Conv", "MaxPool", "AveragePool", "LpPool"]);

/** Operators a tile stack may hold. */
export function isSpatialOp(op: string): boolean {
  return (
    POINTWISE.has(op) || WINDOWED.has(op) || op === "ConvTranspose" || op === "Resize" || op === "Concat"
  );
}

function notTileable(graph: Graph, node: Node, why: string): ArgumentError {
  return new ArgumentError(
    `${graph.source}: node '${node.name}' (${node.op}) cannot be in a tile stack: ${why}`,
    { node: node.name, field: "tiles" },
  );
}

/** Top padding along height of a windowed layer, from `pads` or `auto_pad`. */
function topPad(at: Attrs, hIn: number, hOut: number, s: number, keff: number): number {
  const auto = at.string("auto_pad", "NOTSET");
  if (auto === "VALID") return 0;
  if (auto === "SAME_UPPER" || auto === "SAME_LOWER") {
    const total = Math.max(0, (hOut - 1) * s + keff - hIn);
    return auto === "SAME_UPPER" ? Math.floor(total / 2) : Math.ceil(total / 2);
  }
  return at.ints("pads", [0, 0, 0, 0])[0] ?? 0;
}

/**
 * The rows each input of `node` needs for output rows `out`, and how its copy is changed. `hIn` and `hOut`
 * are the untiled heights of the node's first input and its output; `inputH` the heights of all its inputs
 * (undefined where an input is not a rank-4 tensor).
 */
export function rowRule(
  graph: Graph,
  node: Node,
  out: Rows,
  hIn: number,
  hOut: number,
  inputH: (number | undefined)[],
): RowPlan {
  const at = new Attrs(node);
  const whole = (i: number) =>
    graph.isWeight(node.inputs[i]) || inputH[i] === undefined || node.inputs[i] === "";
  if (POINTWISE.has(node.op)) {
    return {
      inputs: node.inputs.map((_, i) => {
        if (whole(i)) return null;
        if (inputH[i] === hOut) return { ...out };
        if (inputH[i] === 1) return null;
        throw notTileable(graph, node, `input '${node.inputs[i]}' has ${inputH[i]} rows, its output ${hOut}`);
      }),
    };
  }
  if (node.op === "Concat") {
    const axis = at.int("axis", 0);
    if (axis === 2 || axis === -2) throw notTileable(graph, node, "it concatenates along height");
    return { inputs: node.inputs.map((_, i) => (whole(i) ? null : { ...out })) };
  }
  if (WINDOWED.has(node.op)) {
    const wDims = node.op === "Conv" ? graph.constantTensor(node.inputs[1])?.dims.map(Number) : undefined;
    const k = at.ints("kernel_shape", wDims ? wDims.slice(2) : [])[0];
    if (k === undefined) throw notTileable(graph, node, "its kernel size is not known");
    const s = at.ints("strides", [1, 1])[0] ?? 1;
    const d = at.ints("dilations", [1, 1])[0] ?? 1;
    const keff = d * (k - 1) + 1;
    const pt = topPad(at, hIn, hOut, s, keff);
    const lo = out.a * s - pt;
    const hi = (out.b - 1) * s - pt + keff;
    const a = Math.max(0, lo);
    const b = Math.min(hIn, hi);
    return {
      inputs: node.inputs.map((_, i) => (i === 0 ? { a, b } : null)),
      pads: [a - lo, hi - b],
    };
  }
  if (node.op === "ConvTranspose") {
    if (at.has("output_shape") || at.string("auto_pad", "NOTSET") !== "NOTSET")
      throw notTileable(graph, node, "output_shape and auto_pad are not supported in a tile (give pads)");
    const wDims = graph.constantTensor(node.inputs[1])?.dims.map(Number);
    const k = at.ints("kernel_shape", wDims ? wDims.slice(2) : [])[0];
    if (k === undefined) throw notTileable(graph, node, "its kernel size is not known");
    const s = at.ints("strides", [1, 1])[0] ?? 1;
    const d = at.ints("dilations", [1, 1])[0] ?? 1;
    const pt = at.ints("pads", [0, 0, 0, 0])[0] ?? 0;
    const span = d * (k - 1);
    // Output row o (before cropping pt) = i*s + kk*d: input rows that reach [a + pt, b + pt).
    let ia = Math.max(0, Math.ceil((out.a + pt - span) / s));
    ia = Math.min(ia, Math.floor((out.a + pt) / s));
    const ib = Math.min(hIn, Math.floor((out.b - 1 + pt) / s) + 1);
    const first = ia * s - pt;
    const last = (ib - 1) * s + span + 1 - pt;
    const outputPadding = Math.max(0, out.b - last);
    return {
      inputs: node.inputs.map((_, i) => (i === 0 ? { a: ia, b: ib } : null)),
      pads: [0, 0],
      outputPadding,
      computes: { a: first, b: last + outputPadding },
    };
  }
  if (node.op === "Resize") {
    const scale = resizeScale(graph, node, hIn, hOut);
    const mode = at.string("mode", "nearest");
    // Nearest may round up to the next input row (asymmetric, round_prefer_ceil): one row of reach either way.
    const reach = mode === "cubic" ? 2 : 1;
    const a = Math.max(0, Math.floor(out.a / scale) - reach);
    const b = Math.min(hIn, Math.floor((out.b - 1) / scale) + 1 + reach);
    return {
      inputs: node.inputs.map((_, i) => (i === 0 ? { a, b } : null)),
      computes: { a: a * scale, b: b * scale },
    };
  }
  throw notTileable(graph, node, "it mixes positions across rows (end the stack before it)");
}

/** The integer height scale of a Resize given by constant `scales` (sizes are refused: a tile changes them). */
function resizeScale(graph: Graph, node: Node, hIn: number, hOut: number): number {
  const at = new Attrs(node);
  const ctm = at.string("coordinate_transformation_mode", "half_pixel");
  if (!["half_pixel", "asymmetric", "pytorch_half_pixel"].includes(ctm))
    throw notTileable(graph, node, `coordinate_transformation_mode '${ctm}' depends on the whole height`);
  if (node.inputs.length > 3 && node.inputs[3] !== "")
    throw notTileable(graph, node, "it is given sizes (a tile needs scales)");
  const scalesName = node.inputs.length > 2 ? node.inputs[2] : node.inputs[1];
  const t = scalesName ? graph.constantTensor(scalesName) : undefined;
  const scales = t ? tensorToNumbers(t) : undefined;
  const s = hOut / hIn;
  if (!scales || scales.length < 3 || !Number.isInteger(s) || scales[2] !== s)
    throw notTileable(graph, node, "only constant integer scales along height can be tiled");
  return s;
}
