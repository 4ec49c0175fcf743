import { test } from "node:test";
import assert from "node:assert/strict";
import { inferStatic } from "../src/ir/shape-infer.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { assertShapesMatchOrt, finishGraph } from "./helpers/shapes.js";

// More operator forms and opset variants, checked only against onnxruntime (every tensor's dims and dtype)
// and for being resolved without the fallback. Hand-computed expectations live in ir-shapes.test.ts.

const f32 = (b: GraphBuilder, n: string, s: number[]) => b.input(n, "float32", s);

const CASES: [string, number, (b: GraphBuilder) => string[]][] = [
  [
    "resize11 roi",
    11,
    (b) => {
      const x = f32(b, "x", [1, 2, 5, 7]);
      const roi = b.constant("roi", "float32", [0], new Float32Array(0));
      const sc = b.constant("sc", "float32", [4], new Float32Array([1, 1, 1.7, 0.6]));
      return [b.node("Resize", [x, roi, sc], { mode: "linear" })];
    },
  ],
  [
    "resize10",
    10,
    (b) => [
      b.node("Resize", [
        f32(b, "x", [1, 2, 5, 7]),
        b.constant("sc", "float32", [4], new Float32Array([1, 1, 2.5, 0.5])),
      ]),
    ],
  ],
  ["upsample7", 7, (b) => [b.node("Upsample", [f32(b, "x", [1, 2, 5, 7])], { scales: [1, 1, 2.5, 1.5] })]],
  ["clip6", 6, (b) => [b.node("Clip", [f32(b, "x", [2, 3])], { min: { float: 0 }, max: { float: 6 } })]],
  ["topk1", 1, (b) => b.nodeN("TopK", [f32(b, "x", [2, 7])], { k: 3 }, 2)],
  [
    "reduce noop",
    18,
    (b) => [
      b.node("ReduceSum", [f32(b, "x", [2, 3])], { noop_with_empty_axes: 1 }),
      b.node("ReduceSum", [f32(b, "y", [2, 3]), b.ints("e", [])], { keepdims: 0 }),
    ],
  ],
  [
    "argmin last",
    13,
    (b) => [b.node("ArgMin", [f32(b, "x", [2, 3, 4])], { axis: -1, select_last_index: 1 })],
  ],
  [
    "shape neg",
    15,
    (b) => [
      b.node("Shape", [f32(b, "x", [2, 3, 4])], { start: -2 }),
      b.node("Shape", [f32(b, "y", [2, 3, 4])], { start: 5, end: 1 }),
    ],
  ],
  [
    "einsum",
    12,
    (b) => [
      b.node("Einsum", [f32(b, "x", [3, 4]), f32(b, "y", [4])], { equation: "ij,j->i" }),
      b.node("Einsum", [f32(b, "z", [5, 5])], { equation: "ii->i" }),
      b.node("Einsum", [f32(b, "w", [2, 3]), f32(b, "v", [4, 5])], { equation: "ab,cd->abcd" }),
    ],
  ],
  [
    "gemm scalar C",
    13,
    (b) => [
      b.node(
        "Gemm",
        [f32(b, "a", [3, 4]), f32(b, "b", [4, 5]), b.constant("c", "float32", [], new Float32Array([1]))],
        { alpha: { float: 2 }, beta: { float: 0.5 } },
      ),
    ],
  ],
  [
    "conv1x1 big stride",
    13,
    (b) => [
      b.node("Conv", [f32(b, "x", [1, 2, 9, 9]), b.weight("w", [3, 2, 1, 1])], {
        strides: [4, 4],
        auto_pad: "SAME_LOWER",
      }),
    ],
  ],
  [
    "conv 3d",
    13,
    (b) => [
      b.node("Conv", [f32(b, "x", [1, 2, 6, 7, 8]), b.weight("w", [3, 2, 3, 3, 3])], {
        pads: [1, 0, 1, 1, 0, 1],
        strides: [1, 2, 3],
      }),
    ],
  ],
  [
    "avgpool pads ceil count",
    13,
    (b) => [
      b.node("AveragePool", [f32(b, "x", [1, 2, 11, 11])], {
        kernel_shape: [3, 3],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        ceil_mode: 1,
        count_include_pad: 1,
      }),
    ],
  ],
  [
    "maxpool same lower ceil",
    13,
    (b) =>
      b.nodeN(
        "MaxPool",
        [f32(b, "x", [1, 2, 10, 11])],
        { kernel_shape: [3, 2], strides: [3, 3], auto_pad: "SAME_LOWER" },
        2,
      ),
  ],
  [
    "maxpool 1d valid",
    13,
    (b) => [
      b.node("MaxPool", [f32(b, "x", [1, 2, 10])], {
        kernel_shape: [3],
        strides: [2],
        auto_pad: "VALID",
        ceil_mode: 1,
      }),
    ],
  ],
  [
    "lppool",
    13,
    (b) => [
      b.node("LpPool", [f32(b, "x", [1, 2, 10, 10])], { kernel_shape: [3, 3], strides: [2, 2] }),
      b.node("GlobalLpPool", [f32(b, "y", [1, 2, 4, 4])]),
    ],
  ],
  [
    "convT output_shape full",
    13,
    (b) => [
      b.node("ConvTranspose", [f32(b, "x", [1, 2, 5, 5]), b.weight("w", [2, 3, 3, 3])], {
        strides: [2, 2],
        output_shape: [11, 10],
      }),
    ],
  ],
  [
    "convT dilation 1d",
    13,
    (b) => [
      b.node("ConvTranspose", [f32(b, "x", [1, 2, 5]), b.weight("w", [2, 3, 3])], {
        strides: [3],
        dilations: [2],
        pads: [1, 2],
      }),
    ],
  ],
  ["split 13 equal", 13, (b) => b.nodeN("Split", [f32(b, "x", [6, 3])], { axis: 0 }, 3)],
  ["split18 input", 18, (b) => b.nodeN("Split", [f32(b, "x", [6, 3]), b.ints("s", [1, 5])], {}, 2)],
  [
    "cumsum trilu",
    14,
    (b) => [
      b.node("CumSum", [f32(b, "x", [3, 4]), b.ints("a", [1], [])]),
      b.node("Trilu", [f32(b, "y", [3, 4])]),
    ],
  ],
  [
    "scatternd",
    16,
    (b) => [b.node("ScatterND", [f32(b, "x", [4, 3]), b.ints("i", [1, 3], [2, 1]), f32(b, "u", [2, 3])])],
  ],
  ["gridsample", 16, (b) => [b.node("GridSample", [f32(b, "x", [1, 2, 5, 6]), f32(b, "g", [1, 3, 4, 2])])]],
  [
    "roialign",
    16,
    (b) => [
      b.node(
        "RoiAlign",
        [
          f32(b, "x", [1, 2, 8, 8]),
          b.constant("r", "float32", [3, 4], new Float32Array([0, 0, 4, 4, 1, 1, 5, 5, 2, 2, 6, 6])),
          b.ints("bi", [0, 0, 0]),
        ],
        { output_height: 2, output_width: 3 },
      ),
    ],
  ],
  [
    "mod bitshift",
    13,
    (b) => [
      b.node("Mod", [b.input("a", "int32", [3]), b.constant("m", "int32", [1], Int32Array.of(3))]),
      b.node("Mod", [f32(b, "fa", [2, 3]), b.constant("fm", "float32", [3], Float32Array.of(1.5, 2, 3))], {
        fmod: 1,
      }),
    ],
  ],
  [
    "eyelike random",
    13,
    (b) => [
      b.node("EyeLike", [f32(b, "x", [3, 4])], { dtype: 7 }),
      b.node("RandomNormalLike", [f32(b, "y", [2, 2])]),
    ],
  ],
  [
    "mean sum min",
    13,
    (b) => [
      b.node("Mean", [f32(b, "a", [3, 1]), f32(b, "c", [4])]),
      b.node("Sum", [f32(b, "d", [2])]),
      b.node("Min", [f32(b, "e", [2, 1]), f32(b, "f", [1, 2])]),
    ],
  ],
  [
    "castlike isnan",
    15,
    (b) => [
      b.node("CastLike", [f32(b, "x", [2]), b.constant("t", "int32", [1], Int32Array.of(1))]),
      b.node("IsNaN", [f32(b, "y", [2])]),
    ],
  ],
  ["dyn quant", 13, (b) => b.nodeN("DynamicQuantizeLinear", [f32(b, "x", [2, 3])], {}, 3)],
  [
    "layernorm axis1",
    17,
    (b) => b.nodeN("LayerNormalization", [f32(b, "x", [2, 3, 4]), b.weight("s", [3, 4])], { axis: 1 }, 3),
  ],
  [
    "groupnorm",
    18,
    (b) => [
      b.node("GroupNormalization", [f32(b, "x", [2, 4, 3, 3]), b.weight("s", [2]), b.weight("bb", [2])], {
        num_groups: 2,
      }),
    ],
  ],
  [
    "hardmax lrn mvn lpnorm",
    13,
    (b) => [
      b.node("Hardmax", [f32(b, "x", [2, 3])]),
      b.node("LRN", [f32(b, "y", [1, 4, 3, 3])], { size: 3 }),
      b.node("MeanVarianceNormalization", [f32(b, "z", [1, 4, 3, 3])]),
      b.node("LpNormalization", [f32(b, "w", [2, 3])]),
    ],
  ],
  [
    "rnn layout1",
    14,
    (b) =>
      b.nodeN(
        "RNN",
        [f32(b, "x", [2, 5, 3]), b.weight("w", [1, 4, 3]), b.weight("r", [1, 4, 4])],
        { hidden_size: 4 },
        2,
      ),
  ],
  [
    "reverse seq",
    13,
    (b) => [
      b.node("ReverseSequence", [f32(b, "x", [4, 2, 3]), b.ints("l", [4, 3])], {
        batch_axis: 1,
        time_axis: 0,
      }),
    ],
  ],
  [
    "where int",
    13,
    (b) => [
      b.node("Where", [b.input("c", "bool", [2, 1]), b.input("x", "int64", [3]), b.ints("y", [7], [])]),
    ],
  ],
  [
    "pad edge 11",
    11,
    (b) => [b.node("Pad", [f32(b, "x", [2, 3]), b.ints("p", [1, 0, 0, -1])], { mode: "edge" })],
  ],
  ["pad attr 2", 2, (b) => [b.node("Pad", [f32(b, "x", [2, 3])], { pads: [1, 0, 2, 1] })]],
  [
    "unsqueeze scalar",
    13,
    (b) => [
      b.node("Unsqueeze", [b.node("ReduceSum", [f32(b, "x", [3])], { keepdims: 0 }), b.ints("a", [0, 1])]),
    ],
  ],
  [
    "expand shrink",
    13,
    (b) => [
      b.node("Expand", [f32(b, "x", [3, 4]), b.ints("s", [1, 1])]),
      b.node("Expand", [f32(b, "y", [3, 1]), b.ints("s2", [2, 1, 5])]),
    ],
  ],
  ["flatten scalar-ish", 13, (b) => [b.node("Flatten", [f32(b, "x", [3])], { axis: 1 })]],
  [
    "gathernd batch",
    13,
    (b) => [b.node("GatherND", [f32(b, "x", [2, 3, 4]), b.ints("i", [0, 1], [2, 1])], { batch_dims: 1 })],
  ],
  [
    "range float",
    13,
    (b) => [
      b.node("Range", [
        b.constant("a", "float32", [], Float32Array.of(0.1)),
        b.constant("l", "float32", [], Float32Array.of(1)),
        b.constant("d", "float32", [], Float32Array.of(0.3)),
      ]),
    ],
  ],
  [
    "constants",
    13,
    (b) => [
      b.nodeN("Constant", [], { value_float: { float: 1.5 } }, 1)[0],
      b.nodeN("Constant", [], { value_ints: [1, 2, 3] }, 1)[0],
      b.nodeN("Constant", [], { value_int: 4 }, 1)[0],
    ],
  ],
];

for (const [name, opset, build] of CASES) {
  test(`onnxruntime agrees: ${name} (opset ${opset})`, async () => {
    const b = new GraphBuilder(name.replace(/\W/g, "_"), { opset });
    const graph = finishGraph(b, build(b));
    assert.deepEqual(inferStatic(graph).unresolved, []);
    await assertShapesMatchOrt(graph, {}, name);
  });
}
