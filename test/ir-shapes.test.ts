import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type GraphProto, ValueInfoProtoSchema } from "onnx-buf";
import { ArgumentError, ModelError } from "../src/errors.js";
import { Graph } from "../src/ir/graph.js";
import { inferShapes, inferStatic } from "../src/ir/shape-infer.js";
import { GraphBuilder, valueInfo } from "../src/onnx/builder.js";
import type { DType } from "../src/onnx/dtype.js";
import { assertShapesMatchOrt, finishGraph } from "./helpers/shapes.js";

/** An expected type: a shape (dtype float32) or dtype and shape. */
type Want = number[] | { dtype: DType; shape: number[] };

interface Case {
  name: string;
  opset?: number;
  /** Builds the graph; returns the expected type of tensors by name (they become graph outputs). */
  build(b: GraphBuilder): Record<string, Want>;
}

const f32 = (b: GraphBuilder, name: string, shape: number[]) => b.input(name, "float32", shape);
const scalarF = (b: GraphBuilder, name: string, v: number) =>
  b.constant(name, "float32", [], new Float32Array([v]));
/** A 1-element int64 initializer holding an exact 64-bit value (JS numbers cannot hold INT64_MAX). */
const int64 = (b: GraphBuilder, name: string, v: bigint) =>
  b.constant(name, "int64", [1], BigInt64Array.of(v));
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

const CASES: Case[] = [
  // Convolutions: out = floor((in + pads - dilation*(k-1) - 1) / stride + 1).
  {
    name: "Conv with pads, strides and dilations",
    build: (b) => {
      const y = b.node(
        "Conv",
        [f32(b, "x", [1, 3, 17, 17]), b.weight("w", [8, 3, 3, 3]), b.weight("b", [8])],
        {
          pads: [1, 1, 1, 1],
          strides: [2, 2],
          dilations: [2, 2],
        },
      );
      return { [y]: [1, 8, 8, 8] }; // (17 + 2 - 5) / 2 + 1 = 8
    },
  },
  {
    name: "grouped Conv with unequal strides (floor)",
    build: (b) => {
      const y = b.node("Conv", [f32(b, "x", [1, 8, 10, 12]), b.weight("w", [16, 2, 3, 1])], {
        group: 4,
        strides: [1, 2],
      });
      return { [y]: [1, 16, 8, 6] }; // H: 10 - 3 + 1; W: floor((12 - 1) / 2 + 1) = 6
    },
  },
  {
    name: "depthwise Conv with auto_pad SAME_UPPER",
    build: (b) => {
      const y = b.node("Conv", [f32(b, "x", [2, 6, 9, 9]), b.weight("w", [6, 1, 3, 3])], {
        group: 6,
        strides: [2, 2],
        auto_pad: "SAME_UPPER",
      });
      return { [y]: [2, 6, 5, 5] }; // ceil(9 / 2)
    },
  },
  {
    name: "1-D Conv with auto_pad VALID",
    build: (b) => {
      const y = b.node("Conv", [f32(b, "x", [1, 4, 20]), b.weight("w", [5, 4, 4])], {
        strides: [3],
        auto_pad: "VALID",
      });
      return { [y]: [1, 5, 6] }; // (20 - 4) / 3 + 1
    },
  },
  {
    name: "ConvTranspose with pads and output_padding",
    build: (b) => {
      const y = b.node("ConvTranspose", [f32(b, "x", [1, 8, 7, 7]), b.weight("w", [8, 4, 3, 3])], {
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        output_padding: [1, 1],
      });
      return { [y]: [1, 4, 14, 14] }; // (7 - 1) * 2 + 1 + 3 - 2
    },
  },
  {
    name: "grouped ConvTranspose with SAME_UPPER",
    build: (b) => {
      const y = b.node("ConvTranspose", [f32(b, "x", [1, 4, 5, 6]), b.weight("w", [4, 3, 2, 2])], {
        group: 2,
        strides: [2, 2],
        auto_pad: "SAME_UPPER",
      });
      return { [y]: [1, 6, 10, 12] }; // in * stride; channels 3 * group
    },
  },
  {
    name: "ConvTranspose with output_shape",
    build: (b) => {
      const y = b.node("ConvTranspose", [f32(b, "x", [1, 2, 5, 5]), b.weight("w", [2, 3, 3, 3])], {
        strides: [2, 2],
        output_shape: [10, 11],
      });
      return { [y]: [1, 3, 10, 11] };
    },
  },
  // Matrix products.
  {
    name: "Gemm with transA / transB and bias",
    build: (b) => {
      const y1 = b.node("Gemm", [f32(b, "a", [4, 10]), b.weight("w", [6, 10]), b.weight("c", [6])], {
        transB: 1,
      });
      const y2 = b.node("Gemm", [f32(b, "a2", [10, 4]), b.weight("w2", [10, 3])], { transA: 1 });
      return { [y1]: [4, 6], [y2]: [4, 3] };
    },
  },
  {
    name: "MatMul with batch broadcasting and 1-D operands",
    build: (b) => {
      const y1 = b.node("MatMul", [f32(b, "a", [2, 1, 5, 7]), f32(b, "b", [3, 7, 4])]);
      const y2 = b.node("MatMul", [f32(b, "v", [7]), f32(b, "m", [2, 7, 3])]);
      const y3 = b.node("MatMul", [f32(b, "m2", [2, 5, 7]), b.weight("v2", [7])]);
      return { [y1]: [2, 3, 5, 4], [y2]: [2, 3], [y3]: [2, 5] };
    },
  },
  {
    name: "Einsum batched contraction and implicit output",
    build: (b) => {
      const y1 = b.node("Einsum", [f32(b, "a", [2, 3, 4]), f32(b, "c", [2, 4, 5])], {
        equation: "bij,bjk->bik",
      });
      const y2 = b.node("Einsum", [f32(b, "d", [3, 4])], { equation: "ij" });
      const y3 = b.node("Einsum", [f32(b, "e", [2, 6, 3, 4])], { equation: "...ij->...ji" });
      return { [y1]: [2, 3, 5], [y2]: [3, 4], [y3]: [2, 6, 4, 3] };
    },
  },
  {
    name: "LSTM and bidirectional GRU",
    build: (b) => {
      const x = f32(b, "x", [5, 2, 3]);
      const [y, yh, yc] = b.nodeN(
        "LSTM",
        [x, b.weight("w", [1, 16, 3]), b.weight("r", [1, 16, 4])],
        { hidden_size: 4 },
        3,
      );
      const [gy, gh] = b.nodeN(
        "GRU",
        [x, b.weight("gw", [2, 12, 3]), b.weight("gr", [2, 12, 4])],
        { hidden_size: 4, direction: "bidirectional" },
        2,
      );
      return { [y]: [5, 1, 2, 4], [yh]: [1, 2, 4], [yc]: [1, 2, 4], [gy]: [5, 2, 2, 4], [gh]: [2, 2, 4] };
    },
  },
  {
    name: "quantized ops: QuantizeLinear, QLinearConv, DequantizeLinear, MatMulInteger",
    build: (b) => {
      const u8 = (name: string, dims: number[], v = 1) =>
        b.constant(name, "uint8", dims, new Uint8Array(dims.reduce((p, d) => p * d, 1)).fill(v));
      const q = b.node("QuantizeLinear", [
        f32(b, "x", [1, 3, 8, 8]),
        scalarF(b, "xs", 0.05),
        u8("xz", [], 128),
      ]);
      const sc = scalarF(b, "s", 0.01);
      const qc = b.node(
        "QLinearConv",
        [
          q,
          scalarF(b, "xs2", 0.05),
          u8("xz2", [], 128),
          u8("w", [4, 3, 3, 3], 130),
          sc,
          u8("wz", [], 128),
          scalarF(b, "ys", 0.1),
          u8("yz", [], 128),
        ],
        { pads: [1, 1, 1, 1] },
      );
      const dq = b.node("DequantizeLinear", [qc, scalarF(b, "ds", 0.1), u8("dz", [], 128)]);
      const mi = b.node("MatMulInteger", [b.input("a", "uint8", [2, 3]), u8("bm", [3, 4], 2)]);
      return {
        [q]: { dtype: "uint8", shape: [1, 3, 8, 8] },
        [qc]: { dtype: "uint8", shape: [1, 4, 8, 8] },
        [dq]: [1, 4, 8, 8],
        [mi]: { dtype: "int32", shape: [2, 4] },
      };
    },
  },
  {
    name: "DepthToSpace, SpaceToDepth, OneHot, GatherND, InstanceNormalization",
    build: (b) => {
      const x = f32(b, "x", [1, 8, 3, 5]);
      const d2s = b.node("DepthToSpace", [x], { blocksize: 2 });
      const s2d = b.node("SpaceToDepth", [d2s], { blocksize: 2 });
      const oh = b.node(
        "OneHot",
        [b.ints("idx", [0, 2, 1], [3]), b.ints("depth", [4], []), b.weight("vals", [2])],
        { axis: 0 },
      );
      const gnd = b.node("GatherND", [x, b.ints("ind", [0, 1, 0, 3], [2, 2])]);
      const inn = b.node("InstanceNormalization", [x, b.weight("sc", [8], "ones"), b.weight("bi", [8])]);
      return {
        [d2s]: [1, 2, 6, 10],
        [s2d]: [1, 8, 3, 5],
        [oh]: [4, 3],
        [gnd]: [2, 3, 5],
        [inn]: [1, 8, 3, 5],
      };
    },
  },
  // Normalizations and activations keep the shape.
  {
    name: "BatchNormalization, LayerNormalization statistics, Softmax",
    build: (b) => {
      const x = f32(b, "x", [2, 3, 4, 4]);
      const bn = b.node("BatchNormalization", [
        x,
        b.weight("s", [3], "ones"),
        b.weight("bb", [3]),
        b.weight("m", [3]),
        b.weight("v", [3], "ones"),
      ]);
      const [ln, mean, inv] = b.nodeN(
        "LayerNormalization",
        [f32(b, "t", [2, 5, 8]), b.weight("g", [8], "ones"), b.weight("beta", [8])],
        { axis: -1 },
        3,
      );
      const sm = b.node("Softmax", [bn], { axis: 1 });
      const lsm = b.node("LogSoftmax", [ln], { axis: -1 });
      return {
        [bn]: [2, 3, 4, 4],
        [ln]: [2, 5, 8],
        [mean]: [2, 5, 1],
        [inv]: [2, 5, 1],
        [sm]: [2, 3, 4, 4],
        [lsm]: [2, 5, 8],
      };
    },
  },
  {
    name: "activations, Clip with inputs, PRelu, Dropout mask",
    build: (b) => {
      let x = f32(b, "x", [2, 3, 4]);
      const want: Record<string, Want> = {};
      for (const op of [
        "Relu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "Erf",
        "Softplus",
        "Elu",
        "Selu",
      ]) {
        x = b.node(op, [x]);
        want[x] = [2, 3, 4];
      }
      x = b.node("LeakyRelu", [x], { alpha: 0.1 });
      const abs = b.node("Abs", [x]);
      const lg = b.node("Log", [b.node("Add", [abs, scalarF(b, "one", 1)])]);
      const sq = b.node("Sqrt", [b.node("Exp", [b.node("Neg", [lg])])]);
      const rc = b.node("Reciprocal", [b.node("Identity", [sq])]);
      const cl = b.node("Clip", [rc, scalarF(b, "lo", 0), scalarF(b, "hi", 6)]);
      const pr = b.node("PRelu", [cl, b.weight("slope", [3, 1])]);
      const [dr, mask] = b.nodeN("Dropout", [pr], {}, 2);
      return {
        ...want,
        [lg]: [2, 3, 4],
        [cl]: [2, 3, 4],
        [pr]: [2, 3, 4],
        [dr]: [2, 3, 4],
        [mask]: { dtype: "bool", shape: [2, 3, 4] },
      };
    },
  },
  // Broadcasting.
  {
    name: "numpy broadcasting of binary, comparison, variadic ops and Where",
    build: (b) => {
      const a = f32(b, "a", [2, 1, 4]);
      const c = f32(b, "c", [3, 1]);
      const add = b.node("Add", [a, c]);
      const mul = b.node("Mul", [add, scalarF(b, "two", 2)]);
      const pow = b.node("Pow", [c, scalarF(b, "p", 2)]);
      const eq = b.node("Equal", [a, c]);
      const lt = b.node("Less", [b.weight("w", [4]), a]);
      const or = b.node("Or", [eq, b.node("Not", [lt])]);
      const wh = b.node("Where", [b.input("cond", "bool", [3, 1]), a, b.weight("y", [4])]);
      const mx = b.node("Max", [f32(b, "m1", [1, 4]), c, f32(b, "m3", [2, 1, 1])]);
      return {
        [add]: [2, 3, 4],
        [mul]: [2, 3, 4],
        [pow]: [3, 1],
        [eq]: { dtype: "bool", shape: [2, 3, 4] },
        [lt]: { dtype: "bool", shape: [2, 1, 4] },
        [or]: { dtype: "bool", shape: [2, 3, 4] },
        [wh]: [2, 3, 4],
        [mx]: [2, 3, 4],
      };
    },
  },
  // Layout.
  {
    name: "Reshape with 0 and -1, allowzero, Flatten, Transpose",
    opset: 14,
    build: (b) => {
      const x = f32(b, "x", [2, 3, 4, 5]);
      const r1 = b.node("Reshape", [x, b.ints("s1", [0, -1, 5])]);
      const r2 = b.node("Reshape", [x, b.ints("s2", [-1])]);
      const r3 = b.node("Reshape", [f32(b, "e", [0, 3]), b.ints("s3", [3, 0])], { allowzero: 1 });
      const f1 = b.node("Flatten", [x], { axis: 2 });
      const f2 = b.node("Flatten", [x], { axis: -1 });
      const f3 = b.node("Flatten", [x], { axis: 0 });
      const t1 = b.node("Transpose", [x], { perm: [0, 2, 3, 1] });
      const t2 = b.node("Transpose", [x]);
      return {
        [r1]: [2, 12, 5],
        [r2]: [120],
        [r3]: [3, 0],
        [f1]: [6, 20],
        [f2]: [24, 5],
        [f3]: [1, 120],
        [t1]: [2, 4, 5, 3],
        [t2]: [5, 4, 3, 2],
      };
    },
  },
  {
    name: "Slice with negative indices, negative steps, INT64 bounds",
    build: (b) => {
      const x = f32(b, "x", [5, 6, 7]);
      const s1 = b.node("Slice", [
        x,
        b.ints("st", [-1, 1]),
        b.ints("en", [-6, 1000]),
        b.ints("ax", [0, 2]),
        b.ints("sp", [-1, 2]),
      ]);
      const s2 = b.node("Slice", [
        x,
        b.ints("st2", [-2]),
        int64(b, "en2", INT64_MIN),
        b.ints("ax2", [1]),
        b.ints("sp2", [-1]),
      ]);
      const s3 = b.node("Slice", [x, b.ints("st3", [2]), int64(b, "en3", INT64_MAX), b.ints("ax3", [-1])]);
      const s4 = b.node("Slice", [x, b.ints("st4", [4]), b.ints("en4", [2])]);
      return { [s1]: [5, 6, 3], [s2]: [5, 5, 7], [s3]: [5, 6, 5], [s4]: [0, 6, 7] };
    },
  },
  {
    name: "Slice with attributes (opset 9)",
    opset: 9,
    build: (b) => {
      const y = b.node("Slice", [f32(b, "x", [5, 6, 7])], { starts: [1], ends: [-1], axes: [1] });
      return { [y]: [5, 4, 7] };
    },
  },
  {
    name: "Concat, Split by attribute (opset 11)",
    opset: 11,
    build: (b) => {
      const cat = b.node("Concat", [f32(b, "a", [3, 2]), f32(b, "c", [3, 4])], { axis: -1 });
      const [p, q] = b.nodeN("Split", [cat], { axis: 1, split: [1, 5] }, 2);
      const [e1, e2] = b.nodeN("Split", [f32(b, "d", [4, 6])], {}, 2);
      return { [cat]: [3, 6], [p]: [3, 1], [q]: [3, 5], [e1]: [2, 6], [e2]: [2, 6] };
    },
  },
  {
    name: "Split by input (opset 13) and num_outputs (opset 18)",
    opset: 18,
    build: (b) => {
      const x = f32(b, "x", [3, 7]);
      const [p, q] = b.nodeN("Split", [x, b.ints("sp", [3, 4])], { axis: 1 }, 2);
      const [u, v, w] = b.nodeN("Split", [x], { axis: 1, num_outputs: 3 }, 3);
      return { [p]: [3, 3], [q]: [3, 4], [u]: [3, 3], [v]: [3, 3], [w]: [3, 1] };
    },
  },
  {
    name: "Squeeze/Unsqueeze by attribute (opset 11)",
    opset: 11,
    build: (b) => {
      const sq = b.node("Squeeze", [f32(b, "x", [3, 1, 4])], { axes: [1] });
      const un = b.node("Unsqueeze", [sq], { axes: [0, 3] });
      const all = b.node("Squeeze", [f32(b, "y", [1, 3, 1, 4])]);
      return { [sq]: [3, 4], [un]: [1, 3, 4, 1], [all]: [3, 4] };
    },
  },
  {
    name: "Squeeze/Unsqueeze by input (opset 13)",
    opset: 13,
    build: (b) => {
      const sq = b.node("Squeeze", [f32(b, "x", [3, 1, 4]), b.ints("a1", [-2])]);
      const un = b.node("Unsqueeze", [sq, b.ints("a2", [-1, 1])]);
      return { [sq]: [3, 4], [un]: [3, 1, 4, 1] };
    },
  },
  // Pooling: ceil_mode, dilations, auto_pad.
  {
    name: "MaxPool/AveragePool with ceil_mode, dilations, SAME_UPPER; global pools",
    build: (b) => {
      const x = f32(b, "x", [1, 2, 8, 8]);
      const [m1, idx] = b.nodeN("MaxPool", [x], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }, 2);
      const m2 = b.node("MaxPool", [x], { kernel_shape: [3, 3], strides: [2, 2] });
      const m3 = b.node("MaxPool", [x], { kernel_shape: [2, 2], dilations: [2, 2] });
      const a1 = b.node("AveragePool", [f32(b, "y", [1, 2, 10, 9])], {
        kernel_shape: [3, 3],
        strides: [3, 3],
        ceil_mode: 1,
      });
      const a2 = b.node("AveragePool", [f32(b, "z", [1, 2, 9, 9])], {
        kernel_shape: [3, 3],
        strides: [2, 2],
        auto_pad: "SAME_UPPER",
      });
      const gap = b.node("GlobalAveragePool", [x]);
      const gmp = b.node("GlobalMaxPool", [x]);
      return {
        [m1]: [1, 2, 4, 4], // ceil((8 - 3) / 2 + 1) = 4
        [idx]: { dtype: "int64", shape: [1, 2, 4, 4] },
        [m2]: [1, 2, 3, 3], // floor((8 - 3) / 2 + 1) = 3
        [m3]: [1, 2, 6, 6], // 8 - 2*(2-1) - 1 + 1
        [a1]: [1, 2, 4, 3], // ceil(7/3 + 1) = 4, ceil(6/3 + 1) = 3
        [a2]: [1, 2, 5, 5], // ceil(9 / 2)
        [gap]: [1, 2, 1, 1],
        [gmp]: [1, 2, 1, 1],
      };
    },
  },
  {
    name: "ceil_mode drops a window that would start in the right padding",
    build: (b) => {
      const y = b.node("MaxPool", [f32(b, "x", [1, 1, 7, 7])], {
        kernel_shape: [2, 2],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        ceil_mode: 1,
      });
      return { [y]: [1, 1, 4, 4] }; // ceil((7 + 2 - 2) / 2 + 1) = 5, but window 5 would start at 8 >= 7 + 1
    },
  },
  // Resize and Upsample.
  {
    name: "Resize by scales (floor) and by sizes",
    opset: 13,
    build: (b) => {
      const x = f32(b, "x", [1, 2, 5, 7]);
      const sc = b.constant("sc", "float32", [4], new Float32Array([1, 1, 2, 1.5]));
      const r1 = b.node("Resize", [x, "", sc], { mode: "nearest" });
      const r2 = b.node("Resize", [x, "", "", b.ints("sz", [1, 2, 9, 3])], { mode: "linear" });
      return { [r1]: [1, 2, 10, 10], [r2]: [1, 2, 9, 3] }; // floor(7 * 1.5) = 10
    },
  },
  {
    name: "Resize with axes and keep_aspect_ratio_policy (opset 18)",
    opset: 18,
    build: (b) => {
      const x = f32(b, "x", [1, 2, 6, 8]);
      const r = b.node("Resize", [x, "", "", b.ints("sz", [3, 3])], {
        axes: [2, 3],
        keep_aspect_ratio_policy: "not_larger",
      });
      return { [r]: [1, 2, 2, 3] }; // scale min(3/6, 3/8) = 0.375: round(2.25) = 2, round(3) = 3
    },
  },
  {
    name: "Upsample with a scales input (opset 9)",
    opset: 9,
    build: (b) => {
      const sc = b.constant("sc", "float32", [4], new Float32Array([1, 1, 2, 3]));
      const y = b.node("Upsample", [f32(b, "x", [1, 2, 3, 4]), sc], { mode: "nearest" });
      return { [y]: [1, 2, 6, 12] };
    },
  },
  // Reductions.
  {
    name: "reductions with axes attribute (opset 13) and input (opset 13 ReduceSum), ArgMax, TopK",
    opset: 13,
    build: (b) => {
      const x = f32(b, "x", [2, 3, 4, 5]);
      const m = b.node("ReduceMean", [x], { axes: [2, 3], keepdims: 1 });
      const s = b.node("ReduceSum", [x, b.ints("ax", [1])], { keepdims: 0 });
      const all = b.node("ReduceMax", [x], { keepdims: 0 });
      const am = b.node("ArgMax", [x], { axis: 1, keepdims: 0 });
      const [tv, ti] = b.nodeN("TopK", [x, b.ints("k", [2])], { axis: -1 }, 2);
      return {
        [m]: [2, 3, 1, 1],
        [s]: [2, 4, 5],
        [all]: [],
        [am]: { dtype: "int64", shape: [2, 4, 5] },
        [tv]: [2, 3, 4, 2],
        [ti]: { dtype: "int64", shape: [2, 3, 4, 2] },
      };
    },
  },
  {
    name: "reductions with axes input (opset 18)",
    opset: 18,
    build: (b) => {
      const x = f32(b, "x", [2, 3, 4]);
      const m = b.node("ReduceMax", [x, b.ints("ax", [-1])], { keepdims: 0 });
      const l2 = b.node("ReduceL2", [x, b.ints("ax2", [0, 2])]);
      return { [m]: [2, 3], [l2]: [1, 3, 1] };
    },
  },
  // Indexing, padding, shape arithmetic.
  {
    name: "Gather, GatherElements, Pad, Expand, Tile, Cast",
    opset: 18,
    build: (b) => {
      const x = f32(b, "x", [3, 4, 5]);
      const g1 = b.node("Gather", [x, b.ints("i", [0, 2, 1, 0], [2, 2])], { axis: 1 });
      const g2 = b.node("Gather", [x, b.ints("j", [-1], [])], { axis: 0 });
      const ge = b.node("GatherElements", [x, b.ints("k", new Array(12).fill(0), [3, 1, 4])], { axis: 1 });
      const p1 = b.node("Pad", [f32(b, "img", [1, 2, 5, 5]), b.ints("pads", [0, 0, 1, 2, 0, 0, 3, 4])]);
      const p2 = b.node("Pad", [x, b.ints("pads2", [1, 2]), "", b.ints("pax", [-1])], { mode: "reflect" });
      const ex = b.node("Expand", [f32(b, "e", [3, 1]), b.ints("es", [2, 1, 4])]);
      const ti = b.node("Tile", [f32(b, "t", [2, 3]), b.ints("rep", [2, 2])]);
      const ci = b.node("Cast", [x], { to: 6 });
      return {
        [g1]: [3, 2, 2, 5],
        [g2]: [4, 5],
        [ge]: [3, 1, 4],
        [p1]: [1, 2, 9, 11],
        [p2]: [3, 4, 8],
        [ex]: [2, 3, 4],
        [ti]: [4, 6],
        [ci]: { dtype: "int32", shape: [3, 4, 5] },
      };
    },
  },
  {
    name: "Shape with start/end, Size, ConstantOfShape, Range",
    opset: 15,
    build: (b) => {
      const x = f32(b, "x", [2, 3, 4, 5]);
      const sh = b.node("Shape", [x], { start: 1, end: -1 });
      const sz = b.node("Size", [x]);
      const cs = b.node("ConstantOfShape", [sh]);
      const rg = b.node("Range", [b.ints("a", [0], []), b.ints("l", [10], []), b.ints("d", [3], [])]);
      const rf = b.node("Range", [scalarF(b, "fa", 1), scalarF(b, "fl", 0), scalarF(b, "fd", -0.25)]);
      return {
        [sh]: { dtype: "int64", shape: [2] },
        [sz]: { dtype: "int64", shape: [] },
        [cs]: [3, 4],
        [rg]: { dtype: "int64", shape: [4] },
        [rf]: [4],
      };
    },
  },
  {
    name: "exporter shape chain Shape -> Gather -> Unsqueeze -> Concat -> Reshape",
    opset: 13,
    build: (b) => {
      const x = f32(b, "x", [2, 3, 8, 8]);
      const shape = b.node("Shape", [x]);
      const n = b.node("Gather", [shape, b.ints("zero", [0], [])], { axis: 0 });
      const nu = b.node("Unsqueeze", [n, b.ints("ax", [0])]);
      const target = b.node("Concat", [nu, b.ints("minus1", [-1])], { axis: 0 });
      const flat = b.node("Reshape", [x, target]);
      return { [target]: { dtype: "int64", shape: [2] }, [flat]: [2, 192] };
    },
  },
  {
    name: "exporter resize chain with Cast, Mul, Floor, Slice of a shape",
    opset: 13,
    build: (b) => {
      const x = f32(b, "x", [2, 3, 5, 7]);
      const shape = b.node("Shape", [x]);
      const hw = b.node("Slice", [shape, b.ints("s", [2]), b.ints("e", [4])]);
      const scaled = b.node("Floor", [
        b.node("Mul", [b.node("Cast", [hw], { to: 1 }), scalarF(b, "k", 1.5)]),
      ]);
      const nc = b.node("Slice", [shape, b.ints("s0", [0]), b.ints("e0", [2])]);
      const sizes = b.node("Concat", [nc, b.node("Cast", [scaled], { to: 7 })], { axis: 0 });
      const y = b.node("Resize", [x, "", "", sizes], { mode: "nearest" });
      const half = b.node("Div", [b.node("Gather", [shape, b.ints("i3", [3], [])]), b.ints("two", [2], [])]);
      const eq = b.node("Equal", [half, b.ints("three", [3], [])]);
      const pick = b.node("Where", [eq, b.ints("w1", [4]), b.ints("w2", [6])]);
      const z = b.node("Reshape", [y, b.node("Concat", [b.ints("m1", [-1]), pick], { axis: 0 })]);
      // floor(5 * 1.5) = 7, floor(7 * 1.5) = 10; int64 7 / 2 = 3, Equal(3, 3) picks 4: 420 elements as [-1, 4].
      return { [y]: [2, 3, 7, 10], [z]: [105, 4] };
    },
  },
];

for (const c of CASES) {
  test(`static shapes: ${c.name}`, async () => {
    const b = new GraphBuilder(c.name.replace(/\W+/g, "_"), { opset: c.opset ?? 17 });
    const want = c.build(b);
    const graph = finishGraph(b, Object.keys(want));
    const st = inferStatic(graph);
    assert.deepEqual(st.unresolved, [], "every node is resolved statically");
    for (const [name, w] of Object.entries(want)) {
      const expected = Array.isArray(w) ? { dtype: "float32", shape: w } : w;
      assert.deepEqual(st.types.get(name), expected, `type of ${name}`);
    }
    await assertShapesMatchOrt(graph, {}, c.name);
  });
}

test("constant folding tracks the values of shape arithmetic", () => {
  const b = new GraphBuilder("fold", { opset: 13 });
  const x = f32(b, "x", [2, 3, 8, 8]);
  const shape = b.node("Shape", [x]);
  const n = b.node("Gather", [shape, b.ints("zero", [0], [])], { axis: 0 });
  const nu = b.node("Unsqueeze", [n, b.ints("ax", [0])]);
  const target = b.node("Concat", [nu, b.ints("minus1", [-1])], { axis: 0 });
  const prod = b.node("ReduceProd", [b.node("Slice", [shape, b.ints("s", [1]), b.ints("e", [4])])], {
    keepdims: 0,
  });
  const rng = b.node("Range", [b.ints("r0", [5], []), b.ints("r1", [-1], []), b.ints("r2", [-2], [])]);
  const back = b.node("Transpose", [b.node("Reshape", [rng, b.ints("rs", [3, 1])])]);
  const graph = finishGraph(b, [target, prod, back]);
  const { values } = inferStatic(graph);
  assert.deepEqual(values.get(shape)?.data, [2, 3, 8, 8]);
  assert.deepEqual(values.get(n)?.data, [2]);
  assert.deepEqual(values.get(n)?.shape, []);
  assert.deepEqual(values.get(target)?.data, [2, -1]);
  assert.deepEqual(values.get(prod)?.data, [192]);
  assert.deepEqual(values.get(rng)?.data, [5, 3, 1]);
  assert.deepEqual(values.get(back)?.shape, [1, 3]);
  assert.equal(values.has(x), false, "activations have no values");
});

test("symbolic input dims: a lone batch dim defaults to 1, others come from inputShapes", async () => {
  const b = new GraphBuilder("sym");
  const x = b.input("x", "float32", ["N", 3, "H", "W"]);
  const t = b.input("t", "float32", ["batch", 4]);
  const y = b.node("Relu", [x]);
  const z = b.node("Relu", [t]);
  const graph = finishGraph(b, [y, z]);
  const types = await inferShapes(graph, { inputShapes: { x: [2, 3, 16, 24] } });
  assert.deepEqual(types.get(y)?.shape, [2, 3, 16, 24]);
  assert.deepEqual(types.get(z)?.shape, [1, 4]);
  await assert.rejects(
    inferShapes(graph),
    (e: unknown) =>
      e instanceof ArgumentError &&
      e.message ===
        "input 'x' has symbolic dimensions [N, 3, H, W]: give its shape with --input-shape x=1x3x224x224",
  );
});

test("input shape mistakes are ArgumentErrors naming the input", async () => {
  const b = new GraphBuilder("bad");
  const x = b.input("a", "float32", ["N", 3, 8, 8]);
  b.input("b", "float32", [2]);
  const graph = finishGraph(b, [b.node("Relu", [x])]);
  const cases: [Record<string, number[]>, RegExp][] = [
    [{ foo: [1] }, /^unknown input 'foo' in --input-shape \(model inputs: a, b\)$/],
    [{ a: [1, 3, 8] }, /^input 'a' has rank 4 \[N, 3, 8, 8\], but --input-shape gives 1x3x8 \(rank 3\)$/],
    [{ a: [1, 4, 8, 8] }, /^input 'a' has dimension 1 fixed to 3/],
    [{ a: [1, 3, 8, -8] }, /'a' must be non-negative integers/],
  ];
  for (const [shapes, re] of cases) {
    await assert.rejects(inferShapes(graph, { inputShapes: shapes }), (e: unknown) => {
      assert.ok(e instanceof ArgumentError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
  const unk = new GraphBuilder("unk");
  unk.inputs.push(create(ValueInfoProtoSchema, { name: "q", type: valueInfo("q", "float32").type }));
  const g2 = finishGraph(unk, [unk.node("Relu", ["q"])]);
  await assert.rejects(inferShapes(g2), /input 'q' has no declared shape/);
  assert.deepEqual((await inferShapes(g2, { inputShapes: { q: [5] } })).get("q")?.shape, [5]);
});

test("static shape errors are ModelErrors naming the node", async () => {
  const conv = new GraphBuilder("conv");
  conv.node("Conv", [f32(conv, "x", [1, 4, 8, 8]), conv.weight("w", [8, 3, 3, 3])], {}, "badconv");
  const cat = new GraphBuilder("cat");
  cat.node("Concat", [f32(cat, "a", [1, 2]), f32(cat, "b", [1, 2, 3])], { axis: 0 }, "badcat");
  const mm = new GraphBuilder("mm");
  mm.node("MatMul", [f32(mm, "a", [2, 3]), f32(mm, "b", [4, 5])], {}, "badmm");
  const rs = new GraphBuilder("rs");
  rs.node("Reshape", [f32(rs, "a", [2, 3]), rs.ints("s", [4, -1])], {}, "badreshape");
  const add = new GraphBuilder("add");
  add.node("Add", [f32(add, "a", [2, 3]), f32(add, "b", [4])], {}, "badadd");
  const cases: [GraphBuilder, string, RegExp][] = [
    [conv, "badconv", /input has 4 channels but weight \[8, 3, 3, 3\] with group=1 expects 3/],
    [cat, "badcat", /different ranks/],
    [mm, "badmm", /inner dimensions differ/],
    [rs, "badreshape", /cannot reshape \[2, 3\] \(6 elements\) to \[4, -1\]/],
    [add, "badadd", /cannot be broadcast/],
  ];
  for (const [b, node, re] of cases) {
    const graph = finishGraph(b, [b.nodes[0].output[0]]);
    await assert.rejects(inferShapes(graph), (e: unknown) => {
      assert.ok(e instanceof ModelError, String(e));
      assert.equal(e.code, "SHAPE_INFERENCE");
      assert.equal(e.context.node, node);
      assert.ok(e.message.includes(`node '${node}'`), e.message);
      assert.match(e.message, re);
      return true;
    });
  }
});

test("fallback: a data-dependent NonZero is observed in onnxruntime, static inference continues after it", async () => {
  const b = new GraphBuilder("nonzero");
  const x = f32(b, "x", [4, 5]);
  const nz = b.node("NonZero", [b.node("Relu", [x])]);
  const t = b.node("Transpose", [nz]);
  const cnt = b.node("Gather", [b.node("Shape", [t]), b.ints("zero", [0], [])]);
  const ones = b.node("ConstantOfShape", [b.node("Unsqueeze", [cnt, b.ints("ax", [0])])]);
  const graph = finishGraph(b, [t, ones]);
  const st = inferStatic(graph);
  assert.deepEqual(
    st.unresolved.map((u) => u.op),
    ["NonZero"],
  );
  assert.equal(st.types.has(t), false);
  const outputsBefore = graph.model.graph!.output.map((o) => o.name);
  const types = await assertShapesMatchOrt(graph, {}, "nonzero");
  assert.deepEqual(
    graph.model.graph!.output.map((o) => o.name),
    outputsBefore,
    "the fallback runs a copy; the model keeps its outputs",
  );
  const count = types.get(t)!.shape[0];
  assert.ok(count > 0 && count < 20, `some but not all of 20 random values are positive (${count})`);
  assert.deepEqual(types.get(t), { dtype: "int64", shape: [count, 2] });
  assert.deepEqual(types.get(ones), { dtype: "float32", shape: [count] });
});

test("NonZero of a known constant is folded statically", () => {
  const b = new GraphBuilder("nzconst");
  const nz = b.node("NonZero", [b.ints("c", [0, 3, 0, 1, 2, 0], [2, 3])]);
  const graph = finishGraph(b, [nz]);
  const st = inferStatic(graph);
  assert.deepEqual(st.types.get(nz)?.shape, [2, 3]);
  assert.deepEqual(st.values.get(nz)?.data, [0, 1, 1, 1, 0, 1]);
});

/** A one-node subgraph computing `op(outer)` with an untyped output. */
function branch(name: string, op: string, outer: string, extra: Record<string, number[]> = {}): GraphProto {
  const g = new GraphBuilder(name);
  const y = g.node(op, [outer], extra);
  g.output(y, "float32");
  return g.toGraph();
}

test("fallback: an If node with outer-scope reads, then static inference downstream", async () => {
  const b = new GraphBuilder("if", { opset: 13 });
  const x = f32(b, "x", [2, 3]);
  const cond = b.node("Greater", [b.node("ReduceSum", [x], { keepdims: 0 }), scalarF(b, "big", -100)]);
  const y = b.node("If", [cond], {
    then_branch: branch("then", "ReduceMean", x, { axes: [1] }),
    else_branch: branch("else", "Relu", x),
  });
  const z = b.node("Concat", [y, y], { axis: 0 });
  const graph = finishGraph(b, [z]);
  assert.deepEqual(
    inferStatic(graph).unresolved.map((u) => u.op),
    ["If"],
  );
  const types = await assertShapesMatchOrt(graph, {}, "if");
  assert.deepEqual(types.get(y)?.shape, [2, 1], "sum of 6 values in [-1, 1) is > -100: the then branch ran");
  assert.deepEqual(types.get(z)?.shape, [4, 1]);
});

test("an op no static rule knows and onnxruntime cannot run is a ModelError naming it", async () => {
  const b = new GraphBuilder("custom");
  const y = b.node("Frobnicate", [f32(b, "x", [2])], {}, "frob");
  b.nodes[0].domain = "com.example";
  const m = b.toModel();
  m.opsetImport.push({ ...m.opsetImport[0], domain: "com.example", version: 1n });
  m.graph!.output.push(create(ValueInfoProtoSchema, { name: y }));
  await assert.rejects(inferShapes(new Graph(m, { source: "custom.onnx" })), (e: unknown) => {
    assert.ok(e instanceof ModelError, String(e));
    assert.equal(e.context.node, "frob");
    assert.match(
      e.message,
      /^custom\.onnx: cannot infer the shapes of node 'frob' \(Frobnicate: custom domain/,
    );
    return true;
  });
});
