import {
  type FoldRule,
  fail,
  fmtShape,
  intsOf,
  normAxis,
  numel,
  type RuleContext,
  type ShapeRule,
  unknown,
  withShape,
} from "./shape-context.js";
import { forEachIndex, sliceData } from "./shape-fold.js";

/** Indexing operators: Slice, Gather, GatherElements, GatherND, OneHot, NonZero (static when its input is known). */

/** Per-axis start, step and length of a Slice, for every axis of the input. */
function sliceParams(
  c: RuleContext,
  shape: readonly number[],
): { starts: number[]; steps: number[]; out: number[] } {
  const r = shape.length;
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (c.opset < 10) {
    starts = c.attrs.ints("starts", []);
    ends = c.attrs.ints("ends", []);
    axes = c.attrs.has("axes") ? c.attrs.ints("axes", []) : undefined;
  } else {
    starts = intsOf(c, 1, "starts") ?? fail("missing starts");
    ends = intsOf(c, 2, "ends") ?? fail("missing ends");
    axes = intsOf(c, 3, "axes");
    steps = intsOf(c, 4, "steps");
  }
  axes ??= starts.map((_, i) => i);
  steps ??= starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    fail("starts, ends, axes and steps have different lengths");
  const res = { starts: new Array<number>(r).fill(0), steps: new Array<number>(r).fill(1), out: [...shape] };
  axes.forEach((a, i) => {
    const ax = normAxis(a, r);
    const dim = shape[ax];
    const step = steps[i];
    if (step === 0) fail("slice step is 0");
    let s = starts[i] < 0 ? starts[i] + dim : starts[i];
    let e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (step > 0) {
      s = Math.min(Math.max(s, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
    } else {
      s = Math.min(Math.max(s, 0), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
    }
    res.starts[ax] = s;
    res.steps[ax] = step;
    res.out[ax] = Math.max(0, Math.ceil((e - s) / step));
  });
  return res;
}

const slice: ShapeRule = (c) => {
  const x = c.need(0);
  return [withShape(x, sliceParams(c, x.shape).out)];
};

const foldSlice: FoldRule = (c, outs) => {
  const v = c.value(0);
  if (!v) return undefined;
  const p = sliceParams(c, v.shape);
  return [sliceData(v.data, v.shape, p.starts, p.steps, outs[0].shape)];
};

const gather: ShapeRule = (c) => {
  const x = c.need(0);
  const idx = c.need(1);
  const axis = normAxis(c.attrs.int("axis", 0), x.shape.length);
  return [withShape(x, [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)])];
};

const foldGather: FoldRule = (c) => {
  if (!c.hasValue(0) || !c.hasValue(1)) return undefined;
  const v = c.value(0);
  const iv = c.value(1);
  if (!v || !iv) return undefined;
  const axis = normAxis(c.attrs.int("axis", 0), v.shape.length);
  const dim = v.shape[axis];
  const outer = numel(v.shape.slice(0, axis));
  const inner = numel(v.shape.slice(axis + 1));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const raw of iv.data) {
      const k = raw < 0 ? raw + dim : raw;
      if (k < 0 || k >= dim) fail(`index ${raw} is out of range for an axis of size ${dim}`);
      for (let i = 0; i < inner; i++) out.push(v.data[(o * dim + k) * inner + i]);
    }
  }
  return [out];
};

const gatherElements: ShapeRule = (c) => [withShape(c.need(0), [...c.need(1).shape])];

const gatherND: ShapeRule = (c) => {
  const x = c.need(0);
  const idx = c.need(1);
  const b = c.attrs.int("batch_dims", 0);
  const last = idx.shape[idx.shape.length - 1];
  if (idx.shape.length === 0 || b + last > x.shape.length)
    fail(`indices ${fmtShape(idx.shape)} do not fit data ${fmtShape(x.shape)}`);
  return [withShape(x, [...idx.shape.slice(0, -1), ...x.shape.slice(b + last)])];
};

const oneHot: ShapeRule = (c) => {
  const idx = c.need(0);
  const depth = c.value(1);
  if (!depth) unknown("depth of OneHot is not a constant");
  const values = c.need(2);
  const rank = idx.shape.length + 1;
  const axis = normAxis(c.attrs.int("axis", -1), rank);
  const out = [...idx.shape];
  out.splice(axis, 0, Math.trunc(depth.data[0]));
  return [withShape(values, out)];
};

const nonZero: ShapeRule = (c) => {
  const x = c.need(0);
  const v = c.value(0);
  if (!v) unknown("NonZero of a tensor whose values are not known");
  return [{ dtype: "int64", shape: [x.shape.length, v.data.filter((d) => d !== 0).length] }];
};

const foldNonZero: FoldRule = (c) => {
  const v = c.value(0)!;
  const rows: number[][] = v.shape.map(() => []);
  forEachIndex(v.shape, (idx, flat) => {
    if (v.data[flat] === 0) return;
    for (let d = 0; d < idx.length; d++) rows[d].push(idx[d]);
  });
  return [rows.flat()];
};

/** Shape rules of indexing operators. */
export const INDEX_RULES: Record<string, ShapeRule> = {
  Slice: slice,
  Gather: gather,
  GatherElements: gatherElements,
  GatherND: gatherND,
  OneHot: oneHot,
  NonZero: nonZero,
};

/** Constant-folding rules of indexing operators. */
export const INDEX_FOLDS: Record<string, FoldRule> = {
  Slice: foldSlice,
  Gather: foldGather,
  NonZero: foldNonZero,
};
