import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelProto } from "onnx-buf";
import { assignByBoundaries } from "../src/partition/assign.js";
import { SequentialRunner } from "../src/export/run-sequential.js";
import { buildStages } from "../src/export/stage.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { Graph, typeBytes } from "../src/ir/graph.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { createSession } from "../src/onnx/ort.js";
import { balancedCuts, enumerateCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { assertOutputsClose } from "./helpers/compare.js";
import { runtimeChannelConst, runtimeWeight } from "./helpers/runtime-weights.js";

/** Weight elements built at run time in a model, counted while building it. */
interface Built {
  model: ModelProto;
  runtimeParams: number;
}

/** Conv + per-channel scale and shift, all three built at run time; returns the Relu output. */
function convUnit(
  b: GraphBuilder,
  x: string,
  cin: number,
  cout: number,
  k: number,
  seen: { n: number },
): string {
  const w = runtimeWeight(b, [cout, cin, k, k], seen.n++);
  const conv = b.node("Conv", [x, w], { pads: [k >> 1, k >> 1, k >> 1, k >> 1] });
  const scaled = b.node("Mul", [conv, runtimeChannelConst(b, cout, 0.9)]);
  const shifted = b.node("Add", [scaled, runtimeChannelConst(b, cout, 0.05)]);
  return b.node("Relu", [shifted]);
}

/** A DenseNet-style block: every layer reads the concatenation of all earlier ones. */
function denseBlockModel(layers = 4, growth = 4): Built {
  const b = new GraphBuilder("dense-runtime-weights", { seed: 5 });
  const x = b.input("x", "float32", [1, 3, 8, 8]);
  const seen = { n: 0 };
  let params = 0;
  const unit = (inp: string, cin: number, cout: number, k: number) => {
    params += cout * cin * k * k + 2 * cout;
    return convUnit(b, inp, cin, cout, k, seen);
  };
  const feats = [unit(x, 3, 8, 3)];
  let channels = 8;
  for (let i = 0; i < layers; i++) {
    const inp = feats.length === 1 ? feats[0] : b.node("Concat", feats, { axis: 1 });
    feats.push(unit(inp, channels, growth, 3));
    channels += growth;
  }
  const all = b.node("Concat", feats, { axis: 1 });
  const pooled = b.node("Flatten", [b.node("GlobalAveragePool", [all])]);
  const fc = runtimeWeight(b, [channels, 5], seen.n++);
  params += channels * 5;
  b.output(b.node("MatMul", [pooled, fc]), "float32", [1, 5]);
  return { model: b.toModel(), runtimeParams: params };
}

/** An Inception-style block: four parallel branches (1x1, 3x3, 5x5, pool + 1x1) joined by Concat. */
function inceptionModel(): Built {
  const b = new GraphBuilder("inception-runtime-weights", { seed: 6 });
  const x = b.input("x", "float32", [1, 3, 8, 8]);
  const seen = { n: 0 };
  let params = 0;
  const unit = (inp: string, cin: number, cout: number, k: number) => {
    params += cout * cin * k * k + 2 * cout;
    return convUnit(b, inp, cin, cout, k, seen);
  };
  const stem = unit(x, 3, 8, 3);
  const b1 = unit(stem, 8, 4, 1);
  const b2 = unit(unit(stem, 8, 4, 1), 4, 6, 3);
  const b3 = unit(unit(stem, 8, 2, 1), 2, 4, 5);
  const pool = b.node("MaxPool", [stem], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] });
  const b4 = unit(pool, 8, 4, 1);
  const cat = b.node("Concat", [b1, b2, b3, b4], { axis: 1 });
  const out = unit(cat, 18, 8, 3);
  b.output(out, "float32", [1, 8, 8, 8]);
  return { model: b.toModel(), runtimeParams: params };
}

/** Names of the tensors of a graph that depend on a graph input (real activations). */
function activationNames(g: Graph): Set<string> {
  const act = new Set(g.inputs.map((v) => v.name));
  for (const n of g.nodes)
    if ([...n.inputs, ...n.implicitInputs].some((i) => act.has(i))) for (const o of n.outputs) act.add(o);
  return act;
}

const CASES: Array<[string, () => Built]> = [
  ["DenseNet-style block", () => denseBlockModel()],
  ["Inception-style block", () => inceptionModel()],
];

for (const [label, build] of CASES) {
  test(`${label} with weights built from constants: cuts carry only activations, params counted`, async () => {
    const { model, runtimeParams } = build();
    const raw = new Graph(model, { source: label });
    const activations = activationNames(raw);
    const folded = await analyzeModel(model, { source: label });
    const unfolded = await analyzeModel(model, { source: label, noFold: true });
    assert.ok(folded.folding.folded > 0, "constant nodes were folded");
    assert.equal(folded.totals.params, runtimeParams, "run-time built weights are parameters");
    // Unfolded, only the scalar constants they are built from (two per weight) count.
    assert.ok(unfolded.totals.params < runtimeParams / 10, "without folding they count as (almost) nothing");
    for (const n of folded.graph.nodes)
      assert.ok(
        n.outputs.every((o) => activations.has(o)),
        `node '${n.name}' (${n.op}) of the folded graph computes an activation`,
      );

    const cutsOf = (m: AnalyzedModel) => enumerateCuts(m, choosePartitionOrder(m));
    for (const c of cutsOf(folded)) {
      for (const t of c.tensors) assert.ok(activations.has(t), `cut ${c.index} carries weight '${t}'`);
      const bytes = c.tensors.reduce((s, t) => s + typeBytes(folded.types.get(t)), 0);
      assert.equal(c.bytes, bytes, `cut ${c.index}: bytes are the activations' bytes`);
    }
    // The same model unfolded ships weights across some cut: what the folding removes.
    assert.ok(
      cutsOf(unfolded).some((c) => c.tensors.some((t) => !activations.has(t))),
      "without folding some cut carries a built weight",
    );
  });

  test(`${label} with weights built from constants: every cut and 3-4 stage splits reproduce it`, async () => {
    const { model } = build();
    const m = await analyzeModel(model, { source: label });
    const feeds = inputFeeds(m);
    const whole = await createSession(model);
    const want = await whole.run(feeds);
    await whole.release();
    const order = choosePartitionOrder(m);
    const splits = [
      ...enumerateCuts(m, order).map((c) => [c.index]),
      balancedCuts(m, order, 3),
      balancedCuts(m, order, 4),
    ];
    for (const cuts of splits) {
      const stages = buildStages(m, assignByBoundaries(m, order, cuts));
      for (const s of stages)
        assert.ok(
          s.inputs.some((i) => !m.graph.isWeight(i)),
          `cuts ${cuts}: stage ${s.index} has an activation input (reads ${s.inputs.join(", ")})`,
        );
      const runner = await SequentialRunner.fromStages(
        stages,
        m.graph.outputs.map((v) => v.name),
      );
      assertOutputsClose(await runner.run(feeds), want, `cuts ${cuts}`);
      await runner.close();
    }
  });
}

test("folding a model without constant subgraphs changes nothing", async () => {
  const b = new GraphBuilder("plain", { seed: 2 });
  const x = b.input("x", "float32", [1, 4]);
  b.output(b.node("Relu", [b.node("MatMul", [x, b.weight("w", [4, 3])])]), "float32", [1, 3]);
  const model = b.toModel();
  const m = await analyzeModel(model);
  assert.equal(m.graph.model, model, "the same proto when nothing folds");
  assert.equal(m.folding.folded, 0);
});
