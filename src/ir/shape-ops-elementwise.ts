import { type DType, dtypeFromOnnx } from "../onnx/dtype.js";
import type { TensorType } from "./graph.js";
import {
  broadcast,
  type ConstValue,
  type FoldRule,
  fail,
  type RuleContext,
  type ShapeRule,
  withShape,
} from "./shape-context.js";
import { broadcastMap, castData, roundHalfEven, storeAs } from "./shape-fold.js";

/** Elementwise operators: unary, binary and variadic with numpy broadcasting, Where, Cast, Clip, quantization. */

/** Unary ops whose output has the input's shape and dtype, with their fold functions where useful. */
const UNARY: Record<string, ((x: number) => number) | null> = {
  Identity: (x) => x,
  Neg: (x) => -x,
  Abs: (x) => Math.abs(x),
  Floor: (x) => Math.floor(x),
  Ceil: (x) => Math.ceil(x),
  Round: roundHalfEven,
  Sqrt: (x) => Math.sqrt(x),
  Reciprocal: (x) => 1 / x,
  Exp: (x) => Math.exp(x),
  Log: (x) => Math.log(x),
  Relu: (x) => Math.max(0, x),
  Sign: (x) => Math.sign(x),
  Sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  Tanh: (x) => Math.tanh(x),
  LeakyRelu: null,
  HardSigmoid: null,
  HardSwish: null,
  Gelu: null,
  Erf: null,
  Softplus: null,
  Softsign: null,
  Elu: null,
  Selu: null,
  Celu: null,
  Mish: null,
  ThresholdedRelu: null,
  Shrink: null,
  Sin: null,
  Cos: null,
  Tan: null,
  Asin: null,
  Acos: null,
  Atan: null,
  Sinh: null,
  Cosh: null,
  Asinh: null,
  Acosh: null,
  Atanh: null,
  BitwiseNot: null,
  Softmax: null,
  LogSoftmax: null,
  Hardmax: null,
  CumSum: null,
  LpNormalization: null,
  MeanVarianceNormalization: null,
  LRN: null,
  Trilu: null,
  ReverseSequence: null,
  Bernoulli: null,
  ScatterND: null,
  ScatterElements: null,
  Scatter: null,
};

type Binary = (a: number, b: number, dtype: DType, c: RuleContext) => number | undefined;

const intDiv = (a: number, b: number) => (b === 0 ? undefined : Math.trunc(a / b));

/** Binary ops whose output dtype is the first input's. */
const ARITH: Record<string, Binary | null> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b, d) => (isIntDType(d) ? intDiv(a, b) : a / b),
  Pow: (a, b) => a ** b,
  Mod: (a, b, d, c) => {
    if (b === 0 && isIntDType(d)) return undefined;
    const r = a % b;
    return c.attrs.int("fmod", 0) === 1 || r === 0 || Math.sign(r) === Math.sign(b) ? r : r + b;
  },
  BitShift: null,
  BitwiseAnd: (a, b) => a & b,
  BitwiseOr: (a, b) => a | b,
  BitwiseXor: (a, b) => a ^ b,
  PRelu: null,
};

/** Binary ops with a bool output. */
const COMPARE: Record<string, (a: number, b: number) => boolean> = {
  Equal: (a, b) => a === b,
  Less: (a, b) => a < b,
  Greater: (a, b) => a > b,
  LessOrEqual: (a, b) => a <= b,
  GreaterOrEqual: (a, b) => a >= b,
  And: (a, b) => a !== 0 && b !== 0,
  Or: (a, b) => a !== 0 || b !== 0,
  Xor: (a, b) => (a !== 0) !== (b !== 0),
};

/** Variadic broadcasting ops. */
const VARIADIC: Record<string, (xs: number[]) => number> = {
  Max: (xs) => Math.max(...xs),
  Min: (xs) => Math.min(...xs),
  Sum: (xs) => xs.reduce((a, b) => a + b, 0),
  Mean: (xs) => xs.reduce((a, b) => a + b, 0) / xs.length,
};

function isIntDType(d: DType): boolean {
  return d !== "float32" && d !== "float16" && d !== "bfloat16" && d !== "float64";
}

const same: ShapeRule = (c) => {
  const x = c.need(0);
  return [withShape(x, [...x.shape])];
};

/** Output shape of ops before opset 7, whose `broadcast` attribute broadcast B onto A's shape. */
function legacyOrBroadcast(c: RuleContext, shapes: (readonly number[])[]): number[] {
  if (c.opset < 7) return [...shapes[0]];
  return broadcast(...shapes);
}

const binary: ShapeRule = (c) => {
  const a = c.need(0);
  const b = c.need(1);
  return [withShape(a, legacyOrBroadcast(c, [a.shape, b.shape]))];
};

const compare: ShapeRule = (c) => {
  const a = c.need(0);
  const b = c.need(1);
  return [{ dtype: "bool", shape: legacyOrBroadcast(c, [a.shape, b.shape]) }];
};

const variadic: ShapeRule = (c) => {
  const ts: TensorType[] = [];
  for (let i = 0; i < c.nIn; i++) ts.push(c.need(i));
  if (ts.length === 0) fail("needs at least one input");
  return [
    withShape(
      ts[0],
      legacyOrBroadcast(
        c,
        ts.map((t) => t.shape),
      ),
    ),
  ];
};

/** The values of every input, or undefined when one is not known. */
function allValues(c: RuleContext): ConstValue[] | undefined {
  for (let i = 0; i < c.nIn; i++) if (c.input(i) !== undefined && !c.hasValue(i)) return undefined;
  const vs: ConstValue[] = [];
  for (let i = 0; i < c.nIn; i++) {
    if (c.input(i) === undefined) continue;
    const v = c.value(i);
    if (!v) return undefined;
    vs.push(v);
  }
  return vs;
}

function foldMap(fn: (xs: number[], c: RuleContext) => number | undefined): FoldRule {
  return (c, outs) => {
    const vs = allValues(c);
    if (!vs || vs.length === 0) return undefined;
    const dtype = outs[0].dtype;
    let bad = false;
    const data = broadcastMap(outs[0].shape, vs, (xs) => {
      const r = fn(xs, c);
      if (r === undefined) {
        bad = true;
        return 0;
      }
      return storeAs(dtype, r);
    });
    return bad ? undefined : [data];
  };
}

const cast: ShapeRule = (c) => {
  const x = c.need(0);
  const to = dtypeFromOnnx(c.attrs.int("to", 0));
  if (to === undefined) fail(`unsupported target type ${c.attrs.int("to", 0)}`);
  return [{ dtype: to, shape: [...x.shape] }];
};

const castLike: ShapeRule = (c) => [{ dtype: c.need(1).dtype, shape: [...c.need(0).shape] }];

const foldCast: FoldRule = (c, outs) => {
  const v = c.value(0);
  return v ? [castData(v.data, outs[0].dtype)] : undefined;
};

/** Clip bounds: attributes before opset 11, optional inputs after. */
const foldClip: FoldRule = (c, outs) => {
  const v = c.value(0);
  if (!v) return undefined;
  let lo = -Infinity;
  let hi = Infinity;
  if (c.opset < 11) {
    lo = c.attrs.float("min", lo);
    hi = c.attrs.float("max", hi);
  } else {
    for (const [i, set] of [
      [1, (x: number) => (lo = x)],
      [2, (x: number) => (hi = x)],
    ] as const) {
      if (c.input(i) === undefined) continue;
      const b = c.value(i);
      if (!b) return undefined;
      set(b.data[0]);
    }
  }
  return [v.data.map((x) => storeAs(outs[0].dtype, Math.min(hi, Math.max(lo, x))))];
};

const where: ShapeRule = (c) => {
  const cond = c.need(0);
  const x = c.need(1);
  const y = c.need(2);
  return [withShape(x, broadcast(cond.shape, x.shape, y.shape))];
};

/** Dropout: output like the input, optional bool mask of the same shape. */
const dropout: ShapeRule = (c) => {
  const x = c.need(0);
  return [withShape(x, [...x.shape]), { dtype: c.opset >= 10 ? "bool" : x.dtype, shape: [...x.shape] }];
};

const foldIdentity: FoldRule = (c) => {
  const v = c.value(0);
  return v ? [[...v.data]] : undefined;
};

const quantize: ShapeRule = (c) => {
  const x = c.need(0);
  const zp = c.input(2);
  const attrType = dtypeFromOnnx(c.attrs.int("output_dtype", 0));
  return [{ dtype: zp?.dtype ?? attrType ?? "uint8", shape: [...x.shape] }];
};

const dequantize: ShapeRule = (c) => {
  const x = c.need(0);
  const scale = c.need(1);
  return [{ dtype: c.opset >= 19 ? scale.dtype : "float32", shape: [...x.shape] }];
};

const dynamicQuantize: ShapeRule = (c) => {
  const x = c.need(0);
  return [
    { dtype: "uint8", shape: [...x.shape] },
    { dtype: "float32", shape: [] },
    { dtype: "uint8", shape: [] },
  ];
};

/** `dtype` attribute of random/Eye ops (an ONNX type number), else the given default. */
function dtypeAttr(c: RuleContext, def: DType): DType {
  return c.attrs.has("dtype") ? (dtypeFromOnnx(c.attrs.int("dtype", 1)) ?? def) : def;
}

const likeWithDtype: ShapeRule = (c) => {
  const x = c.need(0);
  return [{ dtype: dtypeAttr(c, x.dtype), shape: [...x.shape] }];
};

const randomWithShape: ShapeRule = (c) => [
  { dtype: dtypeAttr(c, "float32"), shape: c.attrs.ints("shape", []) },
];

const isCheck: ShapeRule = (c) => [{ dtype: "bool", shape: [...c.need(0).shape] }];

const not: ShapeRule = (c) => [{ dtype: "bool", shape: [...c.need(0).shape] }];

/** Shape rules of elementwise operators. */
export const ELEMENTWISE_RULES: Record<string, ShapeRule> = {
  ...Object.fromEntries(Object.keys(UNARY).map((op) => [op, same])),
  ...Object.fromEntries(Object.keys(ARITH).map((op) => [op, binary])),
  ...Object.fromEntries(Object.keys(COMPARE).map((op) => [op, compare])),
  ...Object.fromEntries(Object.keys(VARIADIC).map((op) => [op, variadic])),
  // PRelu's slope broadcasts onto X (unidirectional), so the output is X's shape.
  PRelu: same,
  Not: not,
  IsNaN: isCheck,
  IsInf: isCheck,
  Clip: same,
  Where: where,
  Cast: cast,
  CastLike: castLike,
  Dropout: dropout,
  QuantizeLinear: quantize,
  DequantizeLinear: dequantize,
  DynamicQuantizeLinear: dynamicQuantize,
  EyeLike: likeWithDtype,
  RandomNormalLike: likeWithDtype,
  RandomUniformLike: likeWithDtype,
  RandomNormal: randomWithShape,
  RandomUniform: randomWithShape,
};

/** Constant-folding rules of elementwise operators. */
export const ELEMENTWISE_FOLDS: Record<string, FoldRule> = {
  ...Object.fromEntries(
    Object.entries(UNARY)
      .filter((e): e is [string, (x: number) => number] => e[1] !== null)
      .map(([op, f]) => [op, foldMap((xs) => f(xs[0]))]),
  ),
  ...Object.fromEntries(
    Object.entries(ARITH)
      .filter((e): e is [string, Binary] => e[1] !== null)
      .map(([op, f]) => [op, foldMap((xs, c) => f(xs[0], xs[1], c.need(0).dtype, c))]),
  ),
  ...Object.fromEntries(
    Object.entries(COMPARE).map(([op, f]) => [op, foldMap((xs) => (f(xs[0], xs[1]) ? 1 : 0))]),
  ),
  ...Object.fromEntries(Object.entries(VARIADIC).map(([op, f]) => [op, foldMap((xs) => f(xs))])),
  Not: foldMap((xs) => (xs[0] === 0 ? 1 : 0)),
  Where: foldMap((xs) => (xs[0] !== 0 ? xs[1] : xs[2])),
  Cast: foldCast,
  CastLike: foldCast,
  Clip: foldClip,
  Dropout: foldIdentity,
};
