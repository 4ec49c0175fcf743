import { type DType, dtypeSize } from "../onnx/dtype.js";
import { numel } from "../onnx/tensor.js";
import { Attrs, type Graph, type Node, type TensorType } from "./graph.js";

/**
 * Cost of one node (or a sum of nodes). Counts, not times: MACs are multiply-accumulates, FLOPs count
 * every arithmetic operation (2 per MAC plus elementwise work), bytes are of the tensors as stored.
 */
export interface NodeCost {
  macs: number;
  flops: number;
  /** Elements of the weights the node reads (initializers and Constant outputs). */
  params: number;
  paramBytes: number;
  /** Bytes of the node's outputs. */
  outputBytes: number;
  /** Bytes the node reads: activations plus weights (for a roofline model). */
  bytesRead: number;
  /** Bytes the node writes (equals outputBytes). */
  bytesWritten: number;
}

/** A cost of all zeros. */
export function zeroCost(): NodeCost {
  return { macs: 0, flops: 0, params: 0, paramBytes: 0, outputBytes: 0, bytesRead: 0, bytesWritten: 0 };
}

/** Field-wise sum of costs. */
export function sumCosts(costs: readonly NodeCost[]): NodeCost {
  const t = zeroCost();
  for (const c of costs) {
    t.macs += c.macs;
    t.flops += c.flops;
    t.params += c.params;
    t.paramBytes += c.paramBytes;
    t.outputBytes += c.outputBytes;
    t.bytesRead += c.bytesRead;
    t.bytesWritten += c.bytesWritten;
  }
  return t;
}

/**
 * Weights that count as parameters: floating-point tensors, and 8-bit integer tensors (quantized weights).
 * int32/int64 weights are shape constants, indices or quantization zero points' wider cousins, not params.
 */
function isParamDType(d: DType): boolean {
  return (
    d === "float32" || d === "float16" || d === "bfloat16" || d === "float64" || d === "int8" || d === "uint8"
  );
}

/**
 * Cost of every node of `graph`, indexed like `graph.nodes`. Tensors missing from `types` count as 0 bytes.
 * Each weight's params are attributed to its first consumer in topological order, so summing nodes never
 * counts a shared weight twice; bytesRead counts every input (weights included) at every consumer, once per
 * node even when a node reads the same tensor twice. A Constant node costs nothing: its tensor is a weight
 * accounted at its consumers.
 */
export function nodeCosts(graph: Graph, types: ReadonlyMap<string, TensorType>): NodeCost[] {
  const bytes = (name: string) => {
    const t = name === "" ? undefined : types.get(name);
    return t ? numel(t.shape) * dtypeSize(t.dtype) : 0;
  };
  const owned = new Set<string>();
  return graph.nodes.map((node) => {
    const cost = zeroCost();
    if (node.isConstant) return cost;
    const reads = new Set([...node.inputs, ...node.implicitInputs].filter((n) => n !== ""));
    for (const name of reads) {
      cost.bytesRead += bytes(name);
      if (!graph.isWeight(name) || owned.has(name)) continue;
      owned.add(name);
      const t = types.get(name);
      if (!t || !isParamDType(t.dtype)) continue;
      cost.params += numel(t.shape);
      cost.paramBytes += bytes(name);
    }
    for (const o of node.outputs) cost.outputBytes += bytes(o);
    cost.bytesWritten = cost.outputBytes;
    const work = nodeWork(node, types);
    cost.macs = work.macs;
    cost.flops = work.flops;
    return cost;
  });
}

/**
 * FLOPs per output element of elementwise operators. A transcendental (exp, log, erf, tanh, sqrt, sin...)
 * counts as 1; composite activations count their parts, e.g. Sigmoid = neg + exp + add + div = 4,
 * HardSwish = x * clip(x/6 + 0.5) = 4 (mul, add, clip as 1, mul), Gelu (erf form) = 0.5*x*(1+erf(x/sqrt2)) = 5.
 */
const ELEMENTWISE_FLOPS: Record<string, number> = {
  Add: 1,
  Sub: 1,
  Mul: 1,
  Div: 1,
  Pow: 1,
  Mod: 1,
  BitShift: 1,
  BitwiseAnd: 1,
  BitwiseOr: 1,
  BitwiseXor: 1,
  BitwiseNot: 1,
  Equal: 1,
  Less: 1,
  Greater: 1,
  LessOrEqual: 1,
  GreaterOrEqual: 1,
  And: 1,
  Or: 1,
  Xor: 1,
  Not: 1,
  Where: 1,
  Relu: 1,
  Neg: 1,
  Abs: 1,
  Sign: 1,
  Floor: 1,
  Ceil: 1,
  Round: 1,
  Sqrt: 1,
  Reciprocal: 1,
  Exp: 1,
  Log: 1,
  Erf: 1,
  Tanh: 1,
  Sin: 1,
  Cos: 1,
  Tan: 1,
  Asin: 1,
  Acos: 1,
  Atan: 1,
  Sinh: 1,
  Cosh: 1,
  Asinh: 1,
  Acosh: 1,
  Atanh: 1,
  IsNaN: 1,
  IsInf: 1,
  ThresholdedRelu: 1,
  LeakyRelu: 2,
  PRelu: 2,
  Clip: 2,
  Shrink: 2,
  DequantizeLinear: 2,
  HardSigmoid: 3,
  Softplus: 3,
  Softsign: 3,
  Elu: 3,
  QuantizeLinear: 3,
  Sigmoid: 4,
  HardSwish: 4,
  Selu: 4,
  Celu: 4,
  Gelu: 5,
  Mish: 6,
};

/**
 * FLOPs per element of the input of normalizations and similar: BatchNormalization at inference is a folded
 * scale and shift (2); Layer/Instance/Group normalization compute mean (1), variance (sub, square, add = 3),
 * normalize (sub, mul = 2) and the affine (2) = 8; Softmax is max, sub, exp, sum, div = 5.
 */
const PER_INPUT_ELEMENT: Record<string, number> = {
  BatchNormalization: 2,
  LayerNormalization: 8,
  InstanceNormalization: 8,
  GroupNormalization: 8,
  MeanVarianceNormalization: 6,
  LpNormalization: 3,
  LRN: 5,
  Softmax: 5,
  LogSoftmax: 5,
  Hardmax: 1,
  CumSum: 1,
  ArgMax: 1,
  ArgMin: 1,
  TopK: 1,
  GlobalMaxPool: 1,
  ReduceSum: 1,
  ReduceMax: 1,
  ReduceMin: 1,
  ReduceProd: 1,
  ReduceL1: 2,
  ReduceSumSquare: 2,
  ReduceL2: 2,
  ReduceLogSum: 1,
  ReduceLogSumExp: 2,
  ReduceMean: 1,
};

/** Extra FLOPs per output element: a division for means, a sqrt/log to finish the reduction. */
const PER_OUTPUT_ELEMENT: Record<string, number> = {
  GlobalAveragePool: 1,
  ReduceMean: 1,
  ReduceL2: 1,
  ReduceLogSum: 1,
  ReduceLogSumExp: 1,
};

/** MACs and FLOPs of one node. */
function nodeWork(node: Node, types: ReadonlyMap<string, TensorType>): { macs: number; flops: number } {
  const shape = (i: number) => {
    const n = node.inputs[i];
    return n ? types.get(n)?.shape : undefined;
  };
  const outShape = node.outputs[0] ? types.get(node.outputs[0])?.shape : undefined;
  const nOut = outShape ? numel(outShape) : 0;
  const a = new Attrs(node);
  const builtin = node.domain === "" || node.domain === "ai.onnx";
  if (!builtin) return { macs: 0, flops: 0 };
  const op = node.op;
  const has = (i: number) => (node.inputs[i] ?? "") !== "";

  switch (op) {
    case "Conv":
    case "ConvInteger":
    case "QLinearConv": {
      // Each output element is a dot product over (Cin / group) channels times the kernel window.
      const w = shape(op === "QLinearConv" ? 3 : 1);
      if (!w || !outShape) return { macs: 0, flops: 0 };
      const macs = nOut * numel(w.slice(1));
      const bias = op === "Conv" ? has(2) : op === "QLinearConv" && has(8);
      return { macs, flops: 2 * macs + (bias ? nOut : 0) };
    }
    case "ConvTranspose": {
      // Each input element scatters into (Cout / group) channels times the kernel window.
      const x = shape(0);
      const w = shape(1);
      if (!x || !w) return { macs: 0, flops: 0 };
      const macs = numel(x) * numel(w.slice(1));
      return { macs, flops: 2 * macs + (has(2) ? nOut : 0) };
    }
    case "Gemm": {
      const A = shape(0);
      if (!A || !outShape) return { macs: 0, flops: 0 };
      const k = a.int("transA", 0) ? A[0] : A[1];
      const macs = nOut * k;
      return { macs, flops: 2 * macs + (has(2) ? nOut : 0) };
    }
    case "MatMul":
    case "MatMulInteger":
    case "QLinearMatMul": {
      const A = shape(0);
      if (!A || !outShape) return { macs: 0, flops: 0 };
      const macs = nOut * A[A.length - 1];
      return { macs, flops: 2 * macs };
    }
    case "Einsum":
      return einsumWork(a, shape);
    case "RNN":
    case "GRU":
    case "LSTM": {
      // Per step and direction: gates*hidden outputs, each a dot product over input + hidden.
      const x = shape(0);
      const w = shape(1);
      const r = shape(2);
      if (!x || !w || !r) return { macs: 0, flops: 0 };
      const steps = x[0] * x[1];
      const macs = steps * w[0] * w[1] * (w[2] + r[2]);
      // Gate nonlinearities and state updates: about 5 FLOPs per gate element.
      return { macs, flops: 2 * macs + 5 * steps * w[0] * w[1] };
    }
    case "MaxPool":
    case "AveragePool":
    case "LpPool": {
      // One compare/add per window element; the average divides once per output; Lp squares each element.
      const k = numel(a.ints("kernel_shape", []));
      const per = op === "LpPool" ? 2 * k + 1 : op === "AveragePool" ? k + 1 : k;
      return { macs: 0, flops: nOut * per };
    }
    case "Resize":
    case "Upsample": {
      // Nearest copies; linear blends 2 taps per resized axis (2 FLOPs per tap), cubic 4 taps.
      const x = shape(0);
      if (!x || !outShape) return { macs: 0, flops: 0 };
      const mode = a.string("mode", "nearest");
      if (mode === "nearest") return { macs: 0, flops: 0 };
      const axes = x.filter((d, i) => d !== outShape[i]).length;
      const taps = (mode === "cubic" ? 4 : 2) ** axes;
      return { macs: 0, flops: nOut * 2 * taps };
    }
    case "GridSample":
      // Bilinear sampling of a 2-D grid: 4 taps, a multiply and an add each.
      return { macs: 0, flops: nOut * 8 };
    case "Sum":
    case "Max":
    case "Min":
    case "Mean": {
      const n = node.inputs.filter((i) => i !== "").length;
      return { macs: 0, flops: nOut * Math.max(1, n - 1 + (op === "Mean" ? 1 : 0)) };
    }
  }
  const perOut = ELEMENTWISE_FLOPS[op];
  if (perOut !== undefined) return { macs: 0, flops: nOut * perOut };
  const perIn = PER_INPUT_ELEMENT[op];
  const x = shape(0);
  if (perIn !== undefined && x)
    return { macs: 0, flops: numel(x) * perIn + nOut * (PER_OUTPUT_ELEMENT[op] ?? 0) };
  if (op === "GlobalAveragePool" && x) return { macs: 0, flops: numel(x) + nOut };
  // Data movement (Reshape, Transpose, Concat, Slice, Gather, Pad, Cast, Shape...) does no arithmetic.
  return { macs: 0, flops: 0 };
}

/**
 * Einsum as a contraction: every combination of index values is visited once per extra operand, so MACs are
 * (operands - 1) * product of all index sizes. A single operand (a transpose or reduction) costs adds only.
 */
function einsumWork(a: Attrs, shape: (i: number) => number[] | undefined): { macs: number; flops: number } {
  const eq = a
    .string("equation", "")
    .replace(/\s+/g, "")
    .replace(/\.\.\./g, ".");
  const terms = eq.split("->")[0].split(",");
  const size = new Map<string, number>();
  let ell = 1;
  for (let i = 0; i < terms.length; i++) {
    const s = shape(i);
    if (!s) return { macs: 0, flops: 0 };
    const letters = terms[i].replace(".", "");
    const ellRank = s.length - letters.length;
    let d = 0;
    for (const ch of terms[i]) {
      if (ch === ".") {
        ell = Math.max(ell, numel(s.slice(d, d + ellRank)));
        d += ellRank;
      } else size.set(ch, Math.max(size.get(ch) ?? 1, s[d++]));
    }
  }
  const space = ell * [...size.values()].reduce((x, y) => x * y, 1);
  if (terms.length < 2) return { macs: 0, flops: space };
  const macs = (terms.length - 1) * space;
  return { macs, flops: 2 * macs };
}
