import assert from "node:assert/strict";
import { test } from "node:test";
import { analyzeModel } from "../src/ir/analyze.js";
import { type NodeCost, nodeCosts, sumCosts } from "../src/ir/cost.js";
import { constantNodeValue, type Graph } from "../src/ir/graph.js";
import { inferShapes } from "../src/ir/shape-infer.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { loadModel } from "../src/onnx/model-io.js";
import { numel, tensorDims } from "../src/onnx/tensor.js";
import { OCR_MODELS, OCR_SHAPES } from "./helpers/models.js";
import { finishGraph } from "./helpers/shapes.js";

/** Costs of a one-graph model, by node name. */
async function costsOf(
  b: GraphBuilder,
  outputs: string[],
): Promise<{ graph: Graph; by: Map<string, NodeCost> }> {
  const graph = finishGraph(b, outputs);
  const costs = nodeCosts(graph, await inferShapes(graph));
  return { graph, by: new Map(graph.nodes.map((n, i) => [n.name, costs[i]])) };
}

/** MACs and params of single-node graphs, counted by hand in the comments. */
const SINGLE: {
  name: string;
  build(b: GraphBuilder): string;
  macs: number;
  flops?: number;
  params: number;
}[] = [
  {
    name: "Conv 3x3 with bias: out_elems * Cin * 9",
    build: (b) =>
      b.node(
        "Conv",
        [b.input("x", "float32", [1, 3, 32, 32]), b.weight("w", [16, 3, 3, 3]), b.weight("b", [16])],
        {
          pads: [1, 1, 1, 1],
        },
      ),
    macs: 16 * 32 * 32 * 3 * 9, // 442368
    flops: 2 * 442368 + 16 * 32 * 32, // plus one bias add per output
    params: 16 * 27 + 16,
  },
  {
    name: "ResNet stem 7x7 stride 2",
    build: (b) =>
      b.node("Conv", [b.input("x", "float32", [1, 3, 224, 224]), b.weight("w", [64, 3, 7, 7])], {
        strides: [2, 2],
        pads: [3, 3, 3, 3],
      }),
    macs: 64 * 112 * 112 * 3 * 49, // 118013952
    flops: 2 * 118013952,
    params: 64 * 3 * 49,
  },
  {
    name: "depthwise Conv: Cin/groups = 1",
    build: (b) =>
      b.node("Conv", [b.input("x", "float32", [1, 32, 56, 56]), b.weight("w", [32, 1, 3, 3])], {
        group: 32,
        pads: [1, 1, 1, 1],
      }),
    macs: 32 * 56 * 56 * 9, // 903168
    params: 288,
  },
  {
    name: "grouped dilated Conv: Cin/groups = 2",
    build: (b) =>
      b.node("Conv", [b.input("x", "float32", [1, 8, 10, 10]), b.weight("w", [16, 2, 3, 3])], {
        group: 4,
        dilations: [2, 2],
        pads: [2, 2, 2, 2],
      }),
    macs: 16 * 10 * 10 * 2 * 9, // 28800
    params: 288,
  },
  {
    name: "ConvTranspose: in_elems * Cout/groups * k",
    build: (b) =>
      b.node("ConvTranspose", [b.input("x", "float32", [1, 8, 7, 7]), b.weight("w", [8, 4, 3, 3])], {
        strides: [2, 2],
      }),
    macs: 8 * 7 * 7 * 4 * 9, // 14112
    params: 288,
  },
  {
    name: "Gemm with transB and bias: M*N*K",
    build: (b) =>
      b.node("Gemm", [b.input("a", "float32", [4, 10]), b.weight("w", [6, 10]), b.weight("c", [6])], {
        transB: 1,
      }),
    macs: 4 * 6 * 10,
    flops: 2 * 240 + 24,
    params: 66,
  },
  {
    name: "batched MatMul against a weight",
    build: (b) => b.node("MatMul", [b.input("a", "float32", [2, 3, 5, 7]), b.weight("w", [7, 4])]),
    macs: 2 * 3 * 5 * 4 * 7, // 840
    flops: 1680,
    params: 28,
  },
  {
    name: "attention-style MatMul of two activations: no params",
    build: (b) =>
      b.node("MatMul", [b.input("q", "float32", [2, 4, 8, 16]), b.input("k", "float32", [2, 4, 16, 8])]),
    macs: 2 * 4 * 8 * 8 * 16, // 8192
    params: 0,
  },
  {
    name: "Einsum bij,bjk->bik",
    build: (b) =>
      b.node("Einsum", [b.input("a", "float32", [2, 3, 4]), b.input("c", "float32", [2, 4, 5])], {
        equation: "bij,bjk->bik",
      }),
    macs: 2 * 3 * 4 * 5,
    params: 0,
  },
  {
    name: "LSTM: seq * batch * dirs * 4*hidden * (input + hidden)",
    build: (b) =>
      b.nodeN(
        "LSTM",
        [b.input("x", "float32", [5, 2, 3]), b.weight("w", [1, 16, 3]), b.weight("r", [1, 16, 4])],
        { hidden_size: 4 },
        1,
      )[0],
    macs: 5 * 2 * 16 * 7, // 1120
    params: 48 + 64,
  },
  {
    name: "BatchNormalization: 2 FLOPs per element, 4 parameter vectors",
    build: (b) =>
      b.node("BatchNormalization", [
        b.input("x", "float32", [2, 3, 4, 4]),
        b.weight("s", [3], "ones"),
        b.weight("bb", [3]),
        b.weight("m", [3]),
        b.weight("v", [3], "ones"),
      ]),
    macs: 0,
    flops: 2 * 96,
    params: 12,
  },
  {
    name: "MaxPool 3x3: one compare per window element",
    build: (b) =>
      b.node("MaxPool", [b.input("x", "float32", [1, 2, 8, 8])], { kernel_shape: [3, 3], strides: [2, 2] }),
    macs: 0,
    flops: 2 * 3 * 3 * 9,
    params: 0,
  },
  {
    name: "GlobalAveragePool: one add per input, one divide per output",
    build: (b) => b.node("GlobalAveragePool", [b.input("x", "float32", [1, 2, 8, 8])]),
    macs: 0,
    flops: 128 + 2,
    params: 0,
  },
  {
    name: "Sigmoid: 4 FLOPs per element",
    build: (b) => b.node("Sigmoid", [b.input("x", "float32", [1, 3, 4, 4])]),
    macs: 0,
    flops: 4 * 48,
    params: 0,
  },
];

for (const c of SINGLE) {
  test(`cost: ${c.name}`, async () => {
    const b = new GraphBuilder("cost");
    const y = c.build(b);
    const { graph, by } = await costsOf(b, [y]);
    const cost = by.get(graph.nodes[0].name)!;
    assert.equal(cost.macs, c.macs, "MACs");
    if (c.flops !== undefined) assert.equal(cost.flops, c.flops, "FLOPs");
    assert.equal(cost.params, c.params, "params");
    assert.equal(cost.paramBytes, 4 * c.params, "paramBytes (float32)");
  });
}

test("bytes read and written: activations and weights at every consumer", async () => {
  const b = new GraphBuilder("bytes");
  const x = b.input("x", "float32", [1, 3, 4, 4]); // 192 bytes
  const w = b.weight("w", [4, 5]); // 80 bytes
  const r = b.node("Relu", [x], {}, "relu");
  const sq = b.node("Mul", [r, r], {}, "square"); // reads the same tensor twice: counted once
  const m = b.node("MatMul", [sq, w], {}, "mm"); // [1, 3, 4, 5]: 240 bytes
  const { by } = await costsOf(b, [m]);
  assert.deepEqual(by.get("relu"), {
    macs: 0,
    flops: 48,
    params: 0,
    paramBytes: 0,
    outputBytes: 192,
    bytesRead: 192,
    bytesWritten: 192,
  });
  assert.equal(by.get("square")!.bytesRead, 192);
  assert.equal(by.get("mm")!.bytesRead, 192 + 80);
  assert.equal(by.get("mm")!.outputBytes, 240);
  assert.equal(by.get("mm")!.macs, 3 * 4 * 5 * 4);
});

test("a shared weight counts as params once, at its first consumer; both consumers read it", async () => {
  const b = new GraphBuilder("shared");
  const w = b.weight("w", [7, 4]);
  const a = b.node("MatMul", [b.input("a", "float32", [2, 7]), w], {}, "first");
  const c = b.node("MatMul", [b.input("c", "float32", [3, 7]), w], {}, "second");
  const { graph, by } = await costsOf(b, [a, c]);
  assert.equal(by.get("first")!.params, 28);
  assert.equal(by.get("second")!.params, 0);
  assert.equal(by.get("second")!.bytesRead, 3 * 7 * 4 + 28 * 4);
  const costs = graph.nodes.map((n) => by.get(n.name)!);
  assert.equal(sumCosts(costs).params, 28);
  assert.equal(sumCosts(costs).macs, 2 * 4 * 7 + 3 * 4 * 7);
});

test("Constant nodes cost nothing; float constants are params of their first consumer, int64 shapes are not", async () => {
  const b = new GraphBuilder("consts", { opset: 13 });
  const x = b.input("x", "float32", [2, 4]);
  const [k] = b.nodeN("Constant", [], { value_floats: [0.5, 1.5, 2.5, 3.5] }, 1, "k");
  const [shape] = b.nodeN("Constant", [], { value_ints: [4, 2] }, 1, "shape");
  const add = b.node("Add", [x, k], {}, "add");
  const mul = b.node("Mul", [add, k], {}, "mul");
  const rs = b.node("Reshape", [mul, shape], {}, "reshape");
  const { by } = await costsOf(b, [rs]);
  assert.deepEqual(by.get("k"), {
    macs: 0,
    flops: 0,
    params: 0,
    paramBytes: 0,
    outputBytes: 0,
    bytesRead: 0,
    bytesWritten: 0,
  });
  assert.equal(by.get("add")!.params, 4);
  assert.equal(by.get("add")!.paramBytes, 16);
  assert.equal(by.get("add")!.flops, 8);
  assert.equal(by.get("mul")!.params, 0, "already counted at add");
  assert.equal(by.get("reshape")!.params, 0, "an int64 shape is not a parameter");
  assert.equal(by.get("reshape")!.flops, 0);
  assert.equal(by.get("reshape")!.bytesRead, 32 + 16, "the shape tensor is still read");
});

test("PP-OCR det: params equal the elements of its float Constant weights; MACs are dominated by Conv", async () => {
  const { graph, costs, totals } = await analyzeModel(OCR_MODELS.det, { inputShapes: OCR_SHAPES.det });
  let floats = 0;
  for (const n of loadModel(OCR_MODELS.det).graph!.node) {
    if (n.opType !== "Constant") continue;
    const t = constantNodeValue(n)!;
    if (t.dataType === 1) floats += numel(tensorDims(t));
  }
  assert.equal(totals.params, floats);
  assert.equal(totals.paramBytes, 4 * floats);
  const convMacs = graph.nodes.reduce(
    (s, n, i) => s + (n.op === "Conv" || n.op === "ConvTranspose" ? costs[i].macs : 0),
    0,
  );
  assert.equal(convMacs, totals.macs, "only convolutions multiply-accumulate in this model");
  assert.ok(totals.macs > 1e8 && totals.macs < 1e10, `${totals.macs} MACs`);
  assert.ok(totals.flops > 2 * totals.macs, "elementwise work adds FLOPs");
});
