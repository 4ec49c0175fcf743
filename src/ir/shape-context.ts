import type { DType } from "../onnx/dtype.js";
import { numel } from "../onnx/tensor.js";
import type { Attrs, Node, TensorType } from "./graph.js";

/**
 * What a shape rule sees of one node: its attributes, the types of its inputs and, where known, the values of
 * small constant inputs (shape arithmetic). Rules are pure functions of this context.
 */
export interface RuleContext {
  readonly node: Node;
  readonly attrs: Attrs;
  /** Version of the default opset the model imports. */
  readonly opset: number;
  /** Type of input `i`, or undefined when the input is omitted ("" or past the end). */
  input(i: number): TensorType | undefined;
  /** Type of input `i`; a static shape error when it is omitted. */
  need(i: number): TensorType;
  /** Number of inputs as written (omitted trailing ones not counted). */
  readonly nIn: number;
  /** Number of outputs as written. */
  readonly nOut: number;
  /** The value of input `i` when it is a known small constant (weights, folded shape arithmetic). */
  value(i: number): ConstValue | undefined;
  /** True when {@link value} would return a value; cheap (converts nothing), for folds that need several. */
  hasValue(i: number): boolean;
}

/** A small tensor whose contents are known statically, as JS numbers (int64 beyond 2^53 loses precision). */
export interface ConstValue {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: readonly number[];
}

/** Tensors up to this many elements have their values tracked for constant folding. */
export const MAX_CONST_ELEMENTS = 10_000;

/** Thrown by a rule when the output shape cannot be found statically (data-dependent): triggers the fallback. */
export class ShapeUnknown extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "ShapeUnknown";
  }
}

/** Thrown by a rule when the model is statically inconsistent; becomes a ModelError naming the node. */
export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

/** Infers the output types of a node (one per output position; omitted outputs may be given any type). */
export type ShapeRule = (c: RuleContext) => TensorType[];

/** Computes the values of a node's outputs from constant inputs; undefined when they are not all known. */
export type FoldRule = (c: RuleContext, outs: readonly TensorType[]) => (number[] | undefined)[] | undefined;

/** Throws a {@link ShapeError}. */
export function fail(message: string): never {
  throw new ShapeError(message);
}

/** Throws {@link ShapeUnknown}. */
export function unknown(reason: string): never {
  throw new ShapeUnknown(reason);
}

/** A shape as `[1, 3, 224, 224]` for messages. */
export function fmtShape(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

/** An axis in [-rank, rank) made non-negative; a static error otherwise. */
export function normAxis(axis: number, rank: number, what = "axis"): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank)
    fail(`${what} ${axis} is out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Numpy-style (multidirectional) broadcast of shapes; a static error when they are incompatible. */
export function broadcast(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    const off = rank - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = s[i];
      const o = out[off + i];
      if (d === o || d === 1) continue;
      if (o === 1) out[off + i] = d;
      else fail(`shapes ${shapes.map(fmtShape).join(" and ")} cannot be broadcast together`);
    }
  }
  return out;
}

/** The same type with another shape. */
export function withShape(t: TensorType, shape: number[]): TensorType {
  return { dtype: t.dtype, shape };
}

/** Integer values of a constant input; ShapeUnknown when not statically known, undefined when omitted. */
export function intsOf(c: RuleContext, i: number, what: string): number[] | undefined {
  if (c.input(i) === undefined) return undefined;
  const v = c.value(i);
  if (!v) unknown(`${what} (input ${i}) is not a constant`);
  return v.data.map((x) => Math.trunc(x));
}

/** True for floating-point dtypes. */
export function isFloat(d: DType): boolean {
  return d === "float32" || d === "float16" || d === "bfloat16" || d === "float64";
}

/** Element count, re-exported for rules. */
export { numel };
