import type { DType } from "../onnx/dtype.js";
import type { ConstValue } from "./shape-context.js";

/**
 * Helpers for constant folding of small tensors (shape arithmetic). Everything here works on plain JS number
 * arrays of at most a few thousand elements; weights never come through here.
 */

/** Row-major strides of a shape, in elements. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Calls `fn` with every multi-index of `shape` in row-major order and its flat position. */
export function forEachIndex(shape: readonly number[], fn: (idx: number[], flat: number) => void): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    fn(idx, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/** Flat position in `shape` (broadcast from the right against an index of `outRank` dims) of an output index. */
function broadcastOffset(idx: readonly number[], shape: readonly number[], st: readonly number[]): number {
  const off = idx.length - shape.length;
  let p = 0;
  for (let d = 0; d < shape.length; d++) if (shape[d] !== 1) p += idx[off + d] * st[d];
  return p;
}

/** Elementwise `fn` over inputs broadcast to `outShape`. */
export function broadcastMap(
  outShape: readonly number[],
  inputs: readonly ConstValue[],
  fn: (xs: number[]) => number,
): number[] {
  const out: number[] = [];
  const sts = inputs.map((v) => strides(v.shape));
  const xs = new Array<number>(inputs.length);
  forEachIndex(outShape, (idx) => {
    for (let k = 0; k < inputs.length; k++)
      xs[k] = inputs[k].data[broadcastOffset(idx, inputs[k].shape, sts[k])];
    out.push(fn(xs));
  });
  return out;
}

/** Rounds a computed number the way storing it in `dtype` would (float32 precision, integer truncation, bool). */
export function storeAs(dtype: DType, x: number): number {
  switch (dtype) {
    case "float32":
      return Math.fround(x);
    case "float16":
    case "bfloat16":
    case "float64":
      return x;
    case "bool":
      return x !== 0 && !Number.isNaN(x) ? 1 : 0;
    case "uint8":
      return Math.trunc(x) & 0xff;
    case "int8":
      return (Math.trunc(x) << 24) >> 24;
    case "int32":
      return Math.trunc(x) | 0;
    default:
      return Math.trunc(x);
  }
}

/** True for integer and bool dtypes. */
export function isIntegral(d: DType): boolean {
  return d !== "float32" && d !== "float16" && d !== "bfloat16" && d !== "float64" && d !== "string";
}

/** Values converted as ONNX `Cast` does (float to int truncates toward zero). */
export function castData(data: readonly number[], to: DType): number[] | undefined {
  if (to === "string") return undefined;
  return data.map((x) => storeAs(to, x));
}

/** Round half to even, as ONNX `Round` specifies. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Permutes the axes of a small tensor. */
export function transposeData(v: ConstValue, perm: readonly number[]): number[] {
  const st = strides(v.shape);
  const outShape = perm.map((p) => v.shape[p]);
  const out: number[] = [];
  forEachIndex(outShape, (idx) => {
    let p = 0;
    for (let d = 0; d < perm.length; d++) p += idx[d] * st[perm[d]];
    out.push(v.data[p]);
  });
  return out;
}

/** Elements of a strided box of a small tensor. */
export function sliceData(
  data: readonly number[],
  shape: readonly number[],
  starts: readonly number[],
  steps: readonly number[],
  outShape: readonly number[],
): number[] {
  const st = strides(shape);
  const out: number[] = [];
  forEachIndex(outShape, (idx) => {
    let p = 0;
    for (let d = 0; d < idx.length; d++) p += (starts[d] + idx[d] * steps[d]) * st[d];
    out.push(data[p]);
  });
  return out;
}
