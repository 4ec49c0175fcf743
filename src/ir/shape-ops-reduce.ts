import type { TensorType } from "./graph.js";
import {
  type FoldRule,
  fail,
  fmtShape,
  intsOf,
  normAxis,
  type RuleContext,
  type ShapeRule,
  withShape,
} from "./shape-context.js";
import { forEachIndex, storeAs, strides } from "./shape-fold.js";
import { axesOf } from "./shape-ops-layout.js";

/** Reductions (Reduce*, ArgMax/ArgMin, TopK) and normalizations with statistics outputs. */

/** Opset from which each reduction takes its axes as an input instead of an attribute. */
const REDUCE_AXES_INPUT_SINCE: Record<string, number> = {
  ReduceSum: 13,
  ReduceMean: 18,
  ReduceMax: 18,
  ReduceMin: 18,
  ReduceProd: 18,
  ReduceL1: 18,
  ReduceL2: 18,
  ReduceLogSum: 18,
  ReduceLogSumExp: 18,
  ReduceSumSquare: 18,
};

/** Reduced axes (normalized) of a Reduce* node, or undefined for "none" (noop_with_empty_axes). */
function reducedAxes(c: RuleContext, rank: number): Set<number> | undefined {
  const axes = axesOf(c, REDUCE_AXES_INPUT_SINCE[c.node.op]);
  if (axes === undefined || axes.length === 0) {
    if (c.attrs.int("noop_with_empty_axes", 0) === 1) return undefined;
    return new Set(Array.from({ length: rank }, (_, i) => i));
  }
  return new Set(axes.map((a) => normAxis(a, rank)));
}

function reducedShape(shape: readonly number[], axes: Set<number>, keep: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return out;
}

const reduce: ShapeRule = (c) => {
  const x = c.need(0);
  const axes = reducedAxes(c, x.shape.length);
  if (!axes) return [withShape(x, [...x.shape])];
  return [withShape(x, reducedShape(x.shape, axes, c.attrs.int("keepdims", 1) === 1))];
};

/** Accumulators of the foldable reductions: initial value, step, finish (given the count). */
const REDUCERS: Record<string, [number, (a: number, x: number) => number, (a: number, n: number) => number]> =
  {
    ReduceSum: [0, (a, x) => a + x, (a) => a],
    ReduceProd: [1, (a, x) => a * x, (a) => a],
    ReduceMax: [-Infinity, (a, x) => Math.max(a, x), (a) => a],
    ReduceMin: [Infinity, (a, x) => Math.min(a, x), (a) => a],
    ReduceMean: [0, (a, x) => a + x, (a, n) => a / n],
  };

const foldReduce: FoldRule = (c, outs) => {
  const v = c.value(0);
  const red = REDUCERS[c.node.op];
  if (!v || !red) return undefined;
  const axes = reducedAxes(c, v.shape.length);
  if (!axes) return [[...v.data]];
  const kept = reducedShape(v.shape, axes, true);
  const st = strides(kept);
  const acc = new Array<number>(kept.reduce((a, b) => a * b, 1)).fill(red[0]);
  forEachIndex(v.shape, (idx, flat) => {
    let p = 0;
    for (let d = 0; d < idx.length; d++) if (!axes.has(d)) p += idx[d] * st[d];
    acc[p] = red[1](acc[p], v.data[flat]);
  });
  const n = v.data.length / Math.max(1, acc.length);
  return [acc.map((a) => storeAs(outs[0].dtype, red[2](a, n)))];
};

const argReduce: ShapeRule = (c) => {
  const x = c.need(0);
  const axis = normAxis(c.attrs.int("axis", 0), x.shape.length);
  return [
    { dtype: "int64", shape: reducedShape(x.shape, new Set([axis]), c.attrs.int("keepdims", 1) === 1) },
  ];
};

const topK: ShapeRule = (c) => {
  const x = c.need(0);
  const k = c.opset < 10 ? c.attrs.int("k", 0) : (intsOf(c, 1, "k") ?? fail("missing k"))[0];
  const axis = normAxis(c.attrs.int("axis", -1), x.shape.length);
  if (k < 0 || k > x.shape[axis]) fail(`k=${k} is out of range for axis ${axis} of ${fmtShape(x.shape)}`);
  const shape = [...x.shape];
  shape[axis] = k;
  return [withShape(x, shape), { dtype: "int64", shape: [...shape] }];
};

const batchNorm: ShapeRule = (c) => {
  const x = c.need(0);
  const scale = c.need(1);
  if (x.shape.length < 2) fail(`input ${fmtShape(x.shape)} has no channel axis`);
  const ch = x.shape[1];
  for (let i = 1; i < Math.min(5, c.nIn); i++) {
    const t = c.need(i);
    if (t.shape.length !== 1 || t.shape[0] !== ch)
      fail(`input has ${ch} channels but parameter ${i} has shape ${fmtShape(t.shape)}`);
  }
  const stat: TensorType = { dtype: scale.dtype, shape: [ch] };
  return [withShape(x, [...x.shape]), stat, stat, stat, stat];
};

const layerNorm: ShapeRule = (c) => {
  const x = c.need(0);
  const r = x.shape.length;
  const axis = normAxis(c.attrs.int("axis", -1), r);
  const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
  // stash_type 1 (the default) computes and returns statistics in float32.
  const stat: TensorType = {
    dtype: c.attrs.int("stash_type", 1) === 1 ? "float32" : x.dtype,
    shape: statShape,
  };
  return [withShape(x, [...x.shape]), stat, { ...stat, shape: [...statShape] }];
};

const sameAsInput: ShapeRule = (c) => [withShape(c.need(0), [...c.need(0).shape])];

/** Shape rules of reductions and normalizations. */
export const REDUCE_RULES: Record<string, ShapeRule> = {
  ...Object.fromEntries(Object.keys(REDUCE_AXES_INPUT_SINCE).map((op) => [op, reduce])),
  ArgMax: argReduce,
  ArgMin: argReduce,
  TopK: topK,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  InstanceNormalization: sameAsInput,
  GroupNormalization: sameAsInput,
};

/** Constant-folding rules of reductions. */
export const REDUCE_FOLDS: Record<string, FoldRule> = Object.fromEntries(
  Object.keys(REDUCERS).map((op) => [op, foldReduce]),
);
