import type { TensorType } from "./graph.js";
import {
  broadcast,
  type FoldRule,
  fail,
  fmtShape,
  intsOf,
  normAxis,
  numel,
  type RuleContext,
  type ShapeRule,
  withShape,
} from "./shape-context.js";
import { broadcastMap, forEachIndex, sliceData, strides, transposeData } from "./shape-fold.js";

/**
 * Layout operators (Reshape, Flatten, Transpose, Squeeze/Unsqueeze, Concat, Split, Pad, Expand, Tile), with
 * constant folding of the small tensors exporters reshape and concatenate in their shape arithmetic.
 */

/** Target shape of Reshape with 0 (copy, unless allowzero) and -1 (inferred) resolved. */
function reshapeTarget(x: TensorType, spec: number[], allowZero: boolean): number[] {
  const out = spec.map((d, i) => {
    if (d === 0 && !allowZero) {
      if (i >= x.shape.length)
        fail(`shape ${fmtShape(spec)} copies dimension ${i} of a rank-${x.shape.length} input`);
      return x.shape[i];
    }
    return d;
  });
  const neg = out.filter((d) => d === -1).length;
  if (neg > 1 || out.some((d) => d < -1)) fail(`invalid shape ${fmtShape(spec)}`);
  const total = numel(x.shape);
  const known = out.reduce((a, d) => (d === -1 ? a : a * d), 1);
  if (neg === 1) {
    if (known === 0 || total % known !== 0)
      fail(`cannot reshape ${fmtShape(x.shape)} (${total} elements) to ${fmtShape(spec)}`);
    out[out.indexOf(-1)] = total / known;
  } else if (known !== total) {
    fail(`cannot reshape ${fmtShape(x.shape)} (${total} elements) to ${fmtShape(spec)}`);
  }
  return out;
}

const reshape: ShapeRule = (c) => {
  const x = c.need(0);
  const spec = c.opset < 5 ? c.attrs.ints("shape", []) : intsOf(c, 1, "shape");
  if (!spec) fail("missing shape input");
  return [withShape(x, reshapeTarget(x, spec, c.attrs.int("allowzero", 0) === 1))];
};

/** Ops that keep the data and only change the shape. */
const foldSameData: FoldRule = (c) => {
  const v = c.value(0);
  return v ? [[...v.data]] : undefined;
};

const flatten: ShapeRule = (c) => {
  const x = c.need(0);
  const r = x.shape.length;
  let axis = c.attrs.int("axis", 1);
  if (axis < -r || axis > r) fail(`axis ${axis} is out of range for rank ${r}`);
  if (axis < 0) axis += r;
  return [withShape(x, [numel(x.shape.slice(0, axis)), numel(x.shape.slice(axis))])];
};

function transposePerm(c: RuleContext, rank: number): number[] {
  const def = Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const perm = c.attrs.ints("perm", def);
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== rank || sorted.some((p, i) => p !== i))
    fail(`perm ${fmtShape(perm)} is not a permutation of ${rank} axes`);
  return perm;
}

const transpose: ShapeRule = (c) => {
  const x = c.need(0);
  return [
    withShape(
      x,
      transposePerm(c, x.shape.length).map((p) => x.shape[p]),
    ),
  ];
};

const foldTranspose: FoldRule = (c) => {
  const v = c.value(0);
  return v ? [transposeData(v, transposePerm(c, v.shape.length))] : undefined;
};

/** Axes of Squeeze/Unsqueeze/Reduce*: an attribute before `inputSince`, an optional input from then on. */
export function axesOf(c: RuleContext, inputSince: number): number[] | undefined {
  if (c.opset < inputSince) return c.attrs.has("axes") ? c.attrs.ints("axes", []) : undefined;
  return intsOf(c, 1, "axes");
}

const squeeze: ShapeRule = (c) => {
  const x = c.need(0);
  const r = x.shape.length;
  const axes = axesOf(c, 13);
  if (axes === undefined)
    return [
      withShape(
        x,
        x.shape.filter((d) => d !== 1),
      ),
    ];
  const drop = new Set(axes.map((a) => normAxis(a, r)));
  for (const a of drop) if (x.shape[a] !== 1) fail(`cannot squeeze axis ${a} of size ${x.shape[a]}`);
  return [
    withShape(
      x,
      x.shape.filter((_, i) => !drop.has(i)),
    ),
  ];
};

const unsqueeze: ShapeRule = (c) => {
  const x = c.need(0);
  const axes = axesOf(c, 13);
  if (!axes) fail("missing axes");
  const rank = x.shape.length + axes.length;
  const at = new Set(axes.map((a) => normAxis(a, rank)));
  if (at.size !== axes.length) fail(`repeated axis in ${fmtShape(axes)}`);
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : x.shape[k++]);
  return [withShape(x, out)];
};

const concat: ShapeRule = (c) => {
  const ts: TensorType[] = [];
  for (let i = 0; i < c.nIn; i++) ts.push(c.need(i));
  if (ts.length === 0) fail("needs at least one input");
  const r = ts[0].shape.length;
  const axis = normAxis(c.attrs.int("axis", 0), r);
  const out = [...ts[0].shape];
  for (const t of ts.slice(1)) {
    if (t.shape.length !== r)
      fail(`inputs have different ranks: ${fmtShape(ts[0].shape)} and ${fmtShape(t.shape)}`);
    for (let d = 0; d < r; d++) {
      if (d === axis) out[d] += t.shape[d];
      else if (t.shape[d] !== out[d])
        fail(
          `inputs differ in dimension ${d} outside the axis ${axis}: ${fmtShape(ts[0].shape)} and ${fmtShape(t.shape)}`,
        );
    }
  }
  return [withShape(ts[0], out)];
};

const foldConcat: FoldRule = (c, outs) => {
  for (let i = 0; i < c.nIn; i++) if (!c.hasValue(i)) return undefined;
  const vs = [];
  for (let i = 0; i < c.nIn; i++) {
    const v = c.value(i);
    if (!v) return undefined;
    vs.push(v);
  }
  const r = outs[0].shape.length;
  const axis = normAxis(c.attrs.int("axis", 0), r);
  const outer = numel(outs[0].shape.slice(0, axis));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const v of vs) {
      const chunk = numel(v.shape.slice(axis));
      for (let k = 0; k < chunk; k++) out.push(v.data[o * chunk + k]);
    }
  }
  return [out];
};

/** Sizes of Split's outputs along the axis. */
function splitSizes(c: RuleContext, dim: number): number[] {
  const given =
    c.opset < 13 ? (c.attrs.has("split") ? c.attrs.ints("split", []) : undefined) : intsOf(c, 1, "split");
  if (given && given.length > 0) {
    if (given.length !== c.nOut)
      fail(`split ${fmtShape(given)} has ${given.length} parts for ${c.nOut} outputs`);
    const sum = given.reduce((a, b) => a + b, 0);
    if (sum !== dim) fail(`split ${fmtShape(given)} sums to ${sum}, not the axis size ${dim}`);
    return given;
  }
  const n = c.attrs.int("num_outputs", c.nOut);
  if (c.attrs.has("num_outputs")) {
    // Opset 18: equal chunks of ceil(dim / n), the last one smaller.
    const chunk = Math.ceil(dim / n);
    return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
  }
  if (dim % n !== 0) fail(`axis size ${dim} does not split evenly into ${n} outputs`);
  return new Array<number>(n).fill(dim / n);
}

const split: ShapeRule = (c) => {
  const x = c.need(0);
  const axis = normAxis(c.attrs.int("axis", 0), x.shape.length);
  return splitSizes(c, x.shape[axis]).map((s) => {
    const o = [...x.shape];
    o[axis] = s;
    return withShape(x, o);
  });
};

const foldSplit: FoldRule = (c, outs) => {
  const v = c.value(0);
  if (!v) return undefined;
  const axis = normAxis(c.attrs.int("axis", 0), v.shape.length);
  let offset = 0;
  return outs.map((o) => {
    const res = sliceData(
      v.data,
      v.shape,
      v.shape.map((_, d) => (d === axis ? offset : 0)),
      v.shape.map(() => 1),
      o.shape,
    );
    offset += o.shape[axis];
    return res;
  });
};

const pad: ShapeRule = (c) => {
  const x = c.need(0);
  const r = x.shape.length;
  let pads: number[];
  let axes: number[] = x.shape.map((_, i) => i);
  if (c.opset < 11) pads = c.attrs.ints(c.opset < 2 ? "paddings" : "pads", []);
  else {
    pads = intsOf(c, 1, "pads") ?? fail("missing pads");
    const given = intsOf(c, 3, "axes");
    if (given) axes = given.map((a) => normAxis(a, r));
  }
  if (pads.length !== 2 * axes.length)
    fail(`pads ${fmtShape(pads)} do not have 2 values per padded axis (${axes.length})`);
  const out = [...x.shape];
  axes.forEach((a, i) => {
    out[a] += pads[i] + pads[i + axes.length];
  });
  if (out.some((d) => d < 0)) fail(`pads ${fmtShape(pads)} shrink ${fmtShape(x.shape)} below zero`);
  return [withShape(x, out)];
};

const expand: ShapeRule = (c) => {
  const x = c.need(0);
  const s = intsOf(c, 1, "shape") ?? fail("missing shape");
  return [withShape(x, broadcast(x.shape, s))];
};

const foldExpand: FoldRule = (c, outs) => {
  const v = c.value(0);
  return v ? [broadcastMap(outs[0].shape, [v], (xs) => xs[0])] : undefined;
};

const tile: ShapeRule = (c) => {
  const x = c.need(0);
  const reps = intsOf(c, 1, "repeats") ?? fail("missing repeats");
  if (reps.length !== x.shape.length) fail(`repeats ${fmtShape(reps)} do not match rank ${x.shape.length}`);
  return [
    withShape(
      x,
      x.shape.map((d, i) => d * reps[i]),
    ),
  ];
};

const foldTile: FoldRule = (c, outs) => {
  const v = c.value(0);
  if (!v) return undefined;
  const st = strides(v.shape);
  const out: number[] = [];
  forEachIndex(outs[0].shape, (idx) => {
    let p = 0;
    for (let d = 0; d < idx.length; d++) p += (idx[d] % v.shape[d]) * st[d];
    out.push(v.data[p]);
  });
  return [out];
};

/** Shape rules of layout operators. */
export const LAYOUT_RULES: Record<string, ShapeRule> = {
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Concat: concat,
  Split: split,
  Pad: pad,
  Expand: expand,
  Tile: tile,
};

/** Constant-folding rules of layout operators. */
export const LAYOUT_FOLDS: Record<string, FoldRule> = {
  Reshape: foldSameData,
  Flatten: foldSameData,
  Squeeze: foldSameData,
  Unsqueeze: foldSameData,
  Transpose: foldTranspose,
  Concat: foldConcat,
  Split: foldSplit,
  Expand: foldExpand,
  Tile: foldTile,
};
