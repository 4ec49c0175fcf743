import { type DType, dtypeFromOnnx } from "../onnx/dtype.js";
import { tensorDims, tensorToNumbers } from "../onnx/tensor.js";
import {
  type FoldRule,
  fail,
  fmtShape,
  intsOf,
  numel,
  type RuleContext,
  type ShapeRule,
  unknown,
} from "./shape-context.js";
import { storeAs } from "./shape-fold.js";

/** Constants and the shape arithmetic exporters emit: Constant, Shape, Size, ConstantOfShape, Range. */

const constant: ShapeRule = (c) => {
  const a = c.node.proto.attribute[0];
  if (!a) fail("Constant has no value attribute");
  switch (a.name) {
    case "value": {
      const t = a.t;
      const dtype = t ? dtypeFromOnnx(t.dataType) : undefined;
      if (!t || !dtype) unknown("Constant of an unsupported element type");
      return [{ dtype, shape: tensorDims(t) }];
    }
    case "value_float":
      return [{ dtype: "float32", shape: [] }];
    case "value_floats":
      return [{ dtype: "float32", shape: [a.floats.length] }];
    case "value_int":
      return [{ dtype: "int64", shape: [] }];
    case "value_ints":
      return [{ dtype: "int64", shape: [a.ints.length] }];
    case "value_string":
      return [{ dtype: "string", shape: [] }];
    case "value_strings":
      return [{ dtype: "string", shape: [a.strings.length] }];
    case "sparse_value": {
      const s = a.sparseTensor;
      const dtype = s?.values ? dtypeFromOnnx(s.values.dataType) : undefined;
      if (!s || !dtype) unknown("sparse Constant of an unsupported element type");
      return [{ dtype, shape: s.dims.map((d) => Number(d)) }];
    }
    default:
      return fail(`Constant has an unknown attribute '${a.name}'`);
  }
};

/** Start and end of `Shape` (opset 15 attributes), clamped into [0, rank]. */
function shapeRange(c: RuleContext, rank: number): [number, number] {
  const clamp = (v: number) => Math.min(rank, Math.max(0, v < 0 ? v + rank : v));
  return [clamp(c.attrs.int("start", 0)), clamp(c.attrs.int("end", rank))];
}

const shape: ShapeRule = (c) => {
  const x = c.need(0);
  const [s, e] = shapeRange(c, x.shape.length);
  return [{ dtype: "int64", shape: [Math.max(0, e - s)] }];
};

const foldShape: FoldRule = (c) => {
  const x = c.need(0);
  const [s, e] = shapeRange(c, x.shape.length);
  return [x.shape.slice(s, e)];
};

const constantOfShapeFill = (c: RuleContext): { dtype: DType; fill: number } => {
  const t = c.attrs.tensor("value");
  if (!t) return { dtype: "float32", fill: 0 };
  const dtype = dtypeFromOnnx(t.dataType);
  if (!dtype) unknown("ConstantOfShape of an unsupported element type");
  return { dtype, fill: dtype === "string" ? 0 : (tensorToNumbers(t)[0] ?? 0) };
};

const constantOfShape: ShapeRule = (c) => {
  const dims = intsOf(c, 0, "shape");
  if (!dims) fail("missing shape input");
  if (dims.some((d) => d < 0)) fail(`negative dimension in shape ${fmtShape(dims)}`);
  return [{ dtype: constantOfShapeFill(c).dtype, shape: dims }];
};

/** Scalar value of input `i` (Range bounds). */
function scalarOf(c: RuleContext, i: number, what: string): number {
  const v = c.value(i);
  if (!v) unknown(`${what} of Range is not a constant`);
  if (v.data.length !== 1) fail(`${what} of Range must be a scalar, got shape ${fmtShape(v.shape)}`);
  return v.data[0];
}

function rangeLength(c: RuleContext): number {
  const start = scalarOf(c, 0, "start");
  const limit = scalarOf(c, 1, "limit");
  const delta = scalarOf(c, 2, "delta");
  if (delta === 0) fail("delta of Range is 0");
  return Math.max(Math.ceil((limit - start) / delta), 0);
}

const range: ShapeRule = (c) => [{ dtype: c.need(0).dtype, shape: [rangeLength(c)] }];

const foldRange: FoldRule = (c, outs) => {
  const start = c.value(0)!.data[0];
  const delta = c.value(2)!.data[0];
  return [Array.from({ length: outs[0].shape[0] }, (_, i) => storeAs(outs[0].dtype, start + i * delta))];
};

/** Shape rules of constants and shape arithmetic. */
export const CONSTANT_RULES: Record<string, ShapeRule> = {
  Constant: constant,
  Shape: shape,
  Size: () => [{ dtype: "int64", shape: [] }],
  ConstantOfShape: constantOfShape,
  Range: range,
};

/** Constant-folding rules of shape arithmetic (Constant outputs are read directly as weights). */
export const CONSTANT_FOLDS: Record<string, FoldRule> = {
  Shape: foldShape,
  Size: (c) => [[numel(c.need(0).shape)]],
  ConstantOfShape: (c, outs) => {
    const { dtype, fill } = constantOfShapeFill(c);
    return dtype === "string" ? undefined : [new Array<number>(numel(outs[0].shape)).fill(fill)];
  },
  Range: foldRange,
};
