import type { TensorType } from "./graph.js";
import {
  broadcast,
  fail,
  fmtShape,
  normAxis,
  type RuleContext,
  type ShapeRule,
  unknown,
  withShape,
} from "./shape-context.js";

/**
 * Compute-heavy neural-network operators: convolutions, pooling, Gemm/MatMul (and their integer and
 * QLinear forms), Einsum, Resize/Upsample, recurrent layers, depth/space rearrangements. Output sizes follow
 * onnxruntime's CPU kernels where they differ from the spec's prose (float arithmetic, SAME padding).
 */

/** Spatial attributes shared by Conv and pooling: kernel, strides, dilations, pads, auto_pad. */
interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  autoPad: string;
}

function windowAttrs(c: RuleContext, spatial: number, kernel: number[]): Window {
  const ones = new Array<number>(spatial).fill(1);
  const w: Window = {
    kernel,
    strides: c.attrs.ints("strides", ones),
    dilations: c.attrs.ints("dilations", ones),
    pads: c.attrs.ints("pads", new Array<number>(2 * spatial).fill(0)),
    autoPad: c.attrs.string("auto_pad", "NOTSET"),
  };
  if (kernel.length !== spatial)
    fail(`kernel_shape ${fmtShape(kernel)} does not have ${spatial} spatial dims`);
  if (w.strides.length !== spatial || w.dilations.length !== spatial || w.pads.length !== 2 * spatial)
    fail(`strides/dilations/pads do not match ${spatial} spatial dims`);
  if (w.strides.some((s) => s <= 0)) fail(`strides ${fmtShape(w.strides)} must be positive`);
  return w;
}

/** Conv output size per spatial dim, as onnxruntime computes it. */
function convOut(inSize: number, w: Window, i: number): number {
  const s = w.strides[i];
  const k = w.kernel[i];
  const dk = w.dilations[i] * (k - 1) + 1;
  switch (w.autoPad) {
    case "VALID":
      return Math.trunc((inSize - dk) / s) + 1;
    case "SAME_UPPER":
    case "SAME_LOWER": {
      const target = Math.ceil(inSize / s);
      const padNeeded = (target - 1) * s + k - inSize;
      return Math.trunc((inSize + padNeeded - dk) / s) + 1;
    }
    case "NOTSET":
    case "":
      return Math.trunc(Math.fround(inSize + w.pads[i] + w.pads[i + w.kernel.length] - dk) / s + 1);
    default:
      return fail(`unknown auto_pad '${w.autoPad}'`);
  }
}

/** Pooling output size per spatial dim, as onnxruntime computes it (float division, ceil_mode). */
function poolOut(inSize: number, w: Window, i: number, ceilMode: boolean): number {
  const s = w.strides[i];
  const k = w.kernel[i];
  const d = w.dilations[i];
  let padTotal = w.pads[i] + w.pads[i + w.kernel.length];
  let padHead = w.pads[i];
  if (w.autoPad === "VALID") padTotal = padHead = 0;
  else if (w.autoPad === "SAME_UPPER" || w.autoPad === "SAME_LOWER") {
    padTotal = (Math.ceil(inSize / s) - 1) * s + k - inSize;
    padHead = w.autoPad === "SAME_LOWER" ? Math.trunc((padTotal + 1) / 2) : Math.trunc(padTotal / 2);
  } else if (w.autoPad !== "NOTSET" && w.autoPad !== "") fail(`unknown auto_pad '${w.autoPad}'`);
  const span = Math.fround(inSize + padTotal - d * (k - 1) - 1) / s + 1;
  if (!ceilMode) return Math.trunc(span);
  let out = Math.ceil(span);
  // A window must start inside the input or the head padding (the rule onnxruntime and PyTorch share).
  if ((out - 1) * s >= inSize + padHead) out--;
  return out;
}

function spatialOf(x: TensorType, what: string): number {
  if (x.shape.length < 3)
    fail(`${what} input must be at least 3-D (N, C, spatial...), got ${fmtShape(x.shape)}`);
  return x.shape.length - 2;
}

/** Conv and its integer/QLinear forms: X at input `xi`, W at input `wi`. */
function convRule(xi: number, wi: number, dtype: (c: RuleContext) => TensorType["dtype"]): ShapeRule {
  return (c) => {
    const x = c.need(xi);
    const wt = c.need(wi);
    const n = spatialOf(x, "Conv");
    if (wt.shape.length !== x.shape.length)
      fail(`weight ${fmtShape(wt.shape)} and input ${fmtShape(x.shape)} have different ranks`);
    const group = c.attrs.int("group", 1);
    const cin = x.shape[1];
    if (wt.shape[1] * group !== cin)
      fail(
        `input has ${cin} channels but weight ${fmtShape(wt.shape)} with group=${group} expects ${wt.shape[1] * group}`,
      );
    if (wt.shape[0] % group !== 0) fail(`${wt.shape[0]} output channels are not divisible by group=${group}`);
    const w = windowAttrs(c, n, c.attrs.ints("kernel_shape", wt.shape.slice(2)));
    const out = x.shape.slice(2).map((d, i) => convOut(d, w, i));
    if (out.some((d) => d <= 0))
      fail(`output spatial size ${fmtShape(out)} is empty for input ${fmtShape(x.shape)}`);
    return [{ dtype: dtype(c), shape: [x.shape[0], wt.shape[0], ...out] }];
  };
}

const convTranspose: ShapeRule = (c) => {
  const x = c.need(0);
  const wt = c.need(1);
  const n = spatialOf(x, "ConvTranspose");
  const group = c.attrs.int("group", 1);
  if (wt.shape.length !== x.shape.length || wt.shape[0] !== x.shape[1])
    fail(
      `input ${fmtShape(x.shape)} has ${x.shape[1]} channels but weight ${fmtShape(wt.shape)} expects ${wt.shape[0]}`,
    );
  const w = windowAttrs(c, n, c.attrs.ints("kernel_shape", wt.shape.slice(2)));
  const adj = c.attrs.ints("output_padding", new Array<number>(n).fill(0));
  const given = c.attrs.ints("output_shape", []);
  const out = x.shape.slice(2).map((inSize, i) => {
    if (given.length > 0) return given.length === n ? given[i] : given[i + 2];
    const s = w.strides[i];
    const full = (inSize - 1) * s + adj[i] + (w.kernel[i] - 1) * w.dilations[i] + 1;
    if (w.autoPad === "SAME_UPPER" || w.autoPad === "SAME_LOWER")
      return full - Math.max(0, full - inSize * s);
    if (w.autoPad === "VALID") return full;
    return full - w.pads[i] - w.pads[i + n];
  });
  if (out.some((d) => d <= 0)) fail(`output spatial size ${fmtShape(out)} is empty`);
  return [withShape(x, [x.shape[0], wt.shape[1] * group, ...out])];
};

function poolRule(): ShapeRule {
  return (c) => {
    const x = c.need(0);
    const n = spatialOf(x, c.node.op);
    if (!c.attrs.has("kernel_shape")) fail("kernel_shape is required");
    const w = windowAttrs(c, n, c.attrs.ints("kernel_shape", []));
    const ceilMode = c.attrs.int("ceil_mode", 0) === 1;
    const out = x.shape.slice(2).map((d, i) => poolOut(d, w, i, ceilMode));
    if (out.some((d) => d <= 0))
      fail(`output spatial size ${fmtShape(out)} is empty for input ${fmtShape(x.shape)}`);
    const shape = [x.shape[0], x.shape[1], ...out];
    return [withShape(x, shape), { dtype: "int64", shape: [...shape] }];
  };
}

const globalPool: ShapeRule = (c) => {
  const x = c.need(0);
  const n = spatialOf(x, c.node.op);
  return [withShape(x, [x.shape[0], x.shape[1], ...new Array<number>(n).fill(1)])];
};

const gemm: ShapeRule = (c) => {
  const a = c.need(0);
  const b = c.need(1);
  if (a.shape.length !== 2 || b.shape.length !== 2)
    fail(`inputs must be 2-D, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [m, k] = c.attrs.int("transA", 0) ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = c.attrs.int("transB", 0) ? [b.shape[1], b.shape[0]] : b.shape;
  if (k !== k2)
    fail(`inner dimensions differ: A ${fmtShape(a.shape)} and B ${fmtShape(b.shape)} (K ${k} vs ${k2})`);
  const bias = c.input(2);
  if (bias) broadcast([m, n], bias.shape);
  return [withShape(a, [m, n])];
};

/** Numpy matmul output shape (1-D operands promoted and the added dims dropped). */
export function matmulShape(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0 || b.length === 0) fail("MatMul operands must not be scalars");
  const aa = a.length === 1 ? [1, a[0]] : a;
  const bb = b.length === 1 ? [b[0], 1] : b;
  const k = aa[aa.length - 1];
  const k2 = bb[bb.length - 2];
  if (k !== k2) fail(`inner dimensions differ: ${fmtShape(a)} x ${fmtShape(b)} (${k} vs ${k2})`);
  const batch = broadcast(aa.slice(0, -2), bb.slice(0, -2));
  const out = [...batch];
  if (a.length > 1) out.push(aa[aa.length - 2]);
  if (b.length > 1) out.push(bb[bb.length - 1]);
  return out;
}

function matmulRule(ai: number, bi: number, dtype: (c: RuleContext) => TensorType["dtype"]): ShapeRule {
  return (c) => [{ dtype: dtype(c), shape: matmulShape(c.need(ai).shape, c.need(bi).shape) }];
}

/** Parsed Einsum equation: letters per operand (with "." for an ellipsis) and of the output. */
export function parseEinsum(eq: string, nIn: number): { ins: string[]; out: string } {
  const norm = eq.replace(/\s+/g, "").replace(/\.\.\./g, ".");
  const [lhs, rhs] = norm.split("->");
  const ins = lhs.split(",");
  if (ins.length !== nIn) fail(`equation '${eq}' has ${ins.length} operands, node has ${nIn} inputs`);
  if (rhs !== undefined) return { ins, out: rhs };
  const counts = new Map<string, number>();
  for (const t of ins) for (const ch of t) if (ch !== ".") counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const once = [...counts]
    .filter(([, n]) => n === 1)
    .map(([ch]) => ch)
    .sort();
  return { ins, out: (ins.some((t) => t.includes(".")) ? "." : "") + once.join("") };
}

const einsum: ShapeRule = (c) => {
  const ts: TensorType[] = [];
  for (let i = 0; i < c.nIn; i++) ts.push(c.need(i));
  const { ins, out } = parseEinsum(c.attrs.string("equation", ""), ts.length);
  const size = new Map<string, number>();
  let ell: number[] = [];
  ins.forEach((term, i) => {
    const shape = ts[i].shape;
    const letters = term.replace(".", "").length;
    const ellRank = shape.length - letters;
    if (ellRank < 0 || (ellRank > 0 && !term.includes(".")))
      fail(`operand ${i} ${fmtShape(shape)} does not match '${term}'`);
    let d = 0;
    for (const ch of term) {
      if (ch === ".") {
        ell = broadcast(ell, shape.slice(d, d + ellRank));
        d += ellRank;
        continue;
      }
      const prev = size.get(ch);
      const cur = shape[d++];
      if (prev !== undefined && prev !== cur && prev !== 1 && cur !== 1)
        fail(`index '${ch}' has sizes ${prev} and ${cur}`);
      size.set(ch, prev === undefined || prev === 1 ? cur : prev);
    }
  });
  const shape: number[] = [];
  for (const ch of out) {
    if (ch === ".") shape.push(...ell);
    else shape.push(size.get(ch) ?? fail(`output index '${ch}' is not in any operand`));
  }
  return [withShape(ts[0], shape)];
};

/** Resize and Upsample: output dims from sizes, or floor(float(dim) * scale) with float32 arithmetic. */
const resize: ShapeRule = (c) => {
  const x = c.need(0);
  const r = x.shape.length;
  const fromScales = (scales: readonly number[]) => {
    if (scales.length !== r) fail(`scales ${fmtShape([...scales])} do not match rank ${r}`);
    return x.shape.map((d, i) => Math.floor(Math.fround(Math.fround(d) * Math.fround(scales[i]))));
  };
  if (c.node.op === "Upsample" || c.opset < 11) {
    if (c.opset < 9) return [withShape(x, fromScales(c.attrs.floats("scales", [])))];
    const s = c.value(1);
    if (!s) unknown("scales of Resize are not a constant");
    return [withShape(x, fromScales(s.data))];
  }
  const present = (i: number) => {
    const t = c.input(i);
    return t !== undefined && t.shape.reduce((a, b) => a * b, 1) > 0;
  };
  const axes = c.attrs.has("axes")
    ? c.attrs.ints("axes", []).map((a) => normAxis(a, r))
    : x.shape.map((_, i) => i);
  if (present(3)) {
    const sv = c.value(3);
    if (!sv) unknown("sizes of Resize are not a constant");
    let sizes = [...sv.data];
    if (sizes.length !== axes.length) fail(`sizes ${fmtShape(sizes)} do not match ${axes.length} axes`);
    const policy = c.attrs.string("keep_aspect_ratio_policy", "stretch");
    if (policy === "not_larger" || policy === "not_smaller") {
      const ratios = axes.map((a, i) => Math.fround(sizes[i] / x.shape[a]));
      const s = policy === "not_larger" ? Math.min(...ratios) : Math.max(...ratios);
      sizes = axes.map((a) => Math.round(Math.fround(s * x.shape[a])));
    }
    const out = [...x.shape];
    axes.forEach((a, i) => {
      out[a] = sizes[i];
    });
    return [withShape(x, out)];
  }
  if (present(2)) {
    const sv = c.value(2);
    if (!sv) unknown("scales of Resize are not a constant");
    if (sv.data.length !== axes.length)
      fail(`scales ${fmtShape([...sv.data])} do not match ${axes.length} axes`);
    const full = new Array<number>(r).fill(1);
    axes.forEach((a, i) => {
      full[a] = sv.data[i];
    });
    return [withShape(x, fromScales(full))];
  }
  return fail("Resize needs scales or sizes");
};

/** Gates per recurrent cell type. */
const GATES: Record<string, number> = { RNN: 1, GRU: 3, LSTM: 4 };

const recurrent: ShapeRule = (c) => {
  const x = c.need(0);
  const w = c.need(1);
  if (x.shape.length !== 3 || w.shape.length !== 3)
    fail(`X ${fmtShape(x.shape)} and W ${fmtShape(w.shape)} must be 3-D`);
  const layout = c.attrs.int("layout", 0);
  const [seq, batch] = layout === 0 ? x.shape : [x.shape[1], x.shape[0]];
  const dirs = w.shape[0];
  const hidden = c.attrs.int("hidden_size", w.shape[1] / GATES[c.node.op]);
  const y = layout === 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden];
  const h = layout === 0 ? [dirs, batch, hidden] : [batch, dirs, hidden];
  return [withShape(x, y), withShape(x, h), withShape(x, [...h])];
};

const depthToSpace: ShapeRule = (c) => {
  const x = c.need(0);
  const b = c.attrs.int("blocksize", 1);
  if (x.shape.length !== 4 || x.shape[1] % (b * b) !== 0)
    fail(`input ${fmtShape(x.shape)} does not fit blocksize ${b}`);
  const [n, ch, h, w] = x.shape;
  return [withShape(x, [n, ch / (b * b), h * b, w * b])];
};

const spaceToDepth: ShapeRule = (c) => {
  const x = c.need(0);
  const b = c.attrs.int("blocksize", 1);
  if (x.shape.length !== 4 || x.shape[2] % b !== 0 || x.shape[3] % b !== 0)
    fail(`input ${fmtShape(x.shape)} does not fit blocksize ${b}`);
  const [n, ch, h, w] = x.shape;
  return [withShape(x, [n, ch * b * b, h / b, w / b])];
};

const gridSample: ShapeRule = (c) => {
  const x = c.need(0);
  const grid = c.need(1);
  return [withShape(x, [x.shape[0], x.shape[1], ...grid.shape.slice(1, -1)])];
};

const roiAlign: ShapeRule = (c) => {
  const x = c.need(0);
  const rois = c.need(1);
  return [
    withShape(x, [
      rois.shape[0],
      x.shape[1],
      c.attrs.int("output_height", 1),
      c.attrs.int("output_width", 1),
    ]),
  ];
};

const maxRoiPool: ShapeRule = (c) => {
  const x = c.need(0);
  const rois = c.need(1);
  return [withShape(x, [rois.shape[0], x.shape[1], ...c.attrs.ints("pooled_shape", [1, 1])])];
};

/** Shape rules of convolution, pooling, matrix-product, resize and recurrent operators. */
export const NN_RULES: Record<string, ShapeRule> = {
  Conv: convRule(0, 1, (c) => c.need(0).dtype),
  ConvInteger: convRule(0, 1, () => "int32"),
  QLinearConv: convRule(0, 3, (c) => c.need(7).dtype),
  ConvTranspose: convTranspose,
  MaxPool: poolRule(),
  AveragePool: poolRule(),
  LpPool: poolRule(),
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  GlobalLpPool: globalPool,
  Gemm: gemm,
  MatMul: matmulRule(0, 1, (c) => c.need(0).dtype),
  MatMulInteger: matmulRule(0, 1, () => "int32"),
  QLinearMatMul: matmulRule(0, 3, (c) => c.need(7).dtype),
  Einsum: einsum,
  Resize: resize,
  Upsample: resize,
  RNN: recurrent,
  GRU: recurrent,
  LSTM: recurrent,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,
  GridSample: gridSample,
  RoiAlign: roiAlign,
  MaxRoiPool: maxRoiPool,
};
