import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelProto } from "onnx-buf";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { splitRows, stackNodes, tileModel } from "../src/ir/tile.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { createSession, type ort, randomTensor } from "../src/onnx/ort.js";
import { tensorToNumbers } from "../src/onnx/tensor.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { tileCandidates } from "../src/partition/tile-candidates.js";
import { buildZooModel } from "../src/zoo/index.js";
import { assertOutputsClose, maxDiff } from "./helpers/compare.js";
import { OCR_MODELS } from "./helpers/models.js";

// Graph optimisations off on both sides: the tiled model runs exactly the layers it was given.
const EXACT = { optimization: "disabled" } as const;

function feedsOf(model: AnalyzedModel, seed = 11): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [i, v] of model.graph.inputs.entries()) {
    const t = model.types.get(v.name)!;
    feeds[v.name] = randomTensor(t.dtype, t.shape, seed + i);
  }
  return feeds;
}

async function runModel(
  m: ModelProto,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const s = await createSession(m, EXACT);
  try {
    return (await s.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}

/** The longest tile candidates (one per start, longest first). */
function longest(model: AnalyzedModel, count: number) {
  const best = new Map<number, ReturnType<typeof tileCandidates>[number]>();
  for (const c of tileCandidates(model, choosePartitionOrder(model)))
    if ((best.get(c.start)?.end ?? -1) < c.end) best.set(c.start, c);
  return [...best.values()].sort((x, y) => y.end - y.start - (x.end - x.start)).slice(0, count);
}

async function checkTiled(label: string, model: AnalyzedModel, picks: number, ks: number[][]): Promise<void> {
  const feeds = feedsOf(model);
  const want = await runModel(model.graph.model, feeds);
  const cands = longest(model, picks);
  assert.ok(cands.length > 0, `${label}: no tile stack found`);
  for (const c of cands) {
    for (const weights of ks) {
      const tiled = tileModel(model, [{ from: c.from, to: c.to, tiles: weights.length, weights }]);
      const got = await runModel(tiled.model, feeds);
      assertOutputsClose(got, want, `${label} ${c.from} -> ${c.to} tiles [${weights}]`);
      const st = tiled.stacks[0];
      assert.equal(st.rows.length, weights.length);
      assert.ok(st.tiledMacs >= st.macs * 0.999, `${label}: tiles compute at least the stack`);
    }
  }
}

for (const name of ["resnet50", "efficientnet_b0", "googlenet", "unet"]) {
  test(`zoo ${name}: tiled models (2-3 tiles, equal and unequal) reproduce the model`, async () => {
    const model = await analyzeModel(buildZooModel(name), { source: name });
    await checkTiled(name, model, 2, [
      [1, 1],
      [1, 2, 1],
    ]);
  });
}

for (const shape of [
  [1, 3, 320, 320],
  [1, 3, 256, 192],
  [1, 3, 224, 416],
]) {
  test(`PP-OCR det at ${shape.slice(2).join("x")}: tiled models reproduce the model`, async () => {
    const model = await analyzeModel(OCR_MODELS.det, { inputShapes: { x: shape } });
    await checkTiled(`det ${shape}`, model, 2, [
      [1, 1],
      [2, 1, 1],
    ]);
  });
}

/**
 * Up to `count` consecutive tile candidates (each starting where the one before ends) of at most 12 layers
 * each, longer ones tried first (so windowed layers with halos fall inside).
 */
function chain(model: AnalyzedModel, count: number) {
  const cands = tileCandidates(model, choosePartitionOrder(model)).filter((c) => c.end - c.start <= 12);
  const from = new Map<number, typeof cands>();
  for (const c of cands) from.set(c.start, [c, ...(from.get(c.start) ?? [])]); // longest first
  let best: typeof cands = [];
  const walk = (run: typeof cands): boolean => {
    if (run.length > best.length) best = run;
    if (run.length === count) return true;
    return (from.get(run[run.length - 1].end) ?? []).some((c) => walk([...run, c]));
  };
  cands.some((c) => walk([c]));
  return best;
}

for (const name of ["resnet50", "efficientnet_b0", "googlenet"]) {
  test(`zoo ${name}: stacks reading the tiles before them (halo exchange, tile counts differing) reproduce the model`, async () => {
    const model = await analyzeModel(buildZooModel(name), { source: name });
    const feeds = feedsOf(model);
    const want = await runModel(model.graph.model, feeds);
    const run = chain(model, 3);
    assert.ok(run.length >= 2, `${name}: no two consecutive stacks`);
    // Tile boundaries that never line up between stacks: a tile gathers rows from two tiles before it.
    const weights = [
      [1, 2],
      [2, 1, 1],
      [3, 2],
    ];
    const specs = run.map((c, i) => ({
      from: c.from,
      to: c.to,
      tiles: weights[i].length,
      weights: weights[i],
      ...(i > 0 ? { fromTiles: true } : {}),
    }));
    const tiled = tileModel(model, specs);
    assertOutputsClose(await runModel(tiled.model, feeds), want, `${name} chained ${run.map((c) => c.to)}`);
    // Every join but the last went: the next stack gathers its rows (halo included) from the tiles.
    assert.deepEqual(
      tiled.stacks.map((st) => st.join !== undefined),
      run.map((_, i) => i === run.length - 1),
    );
    const names = new Set(tiled.model.graph!.node.map((n) => n.name));
    for (const st of tiled.stacks.slice(1)) {
      assert.ok(st.handoff.length > 0, "rows come from the neighbouring tile");
      for (const h of st.handoff) assert.ok(names.has(h.node), h.node);
      // No tile reads the joined tensor: it is not made any more.
      assert.ok(!tiled.model.graph!.node.some((n) => n.output.includes(st.spec.from)), st.spec.from);
    }
  });
}

/** Odd sizes and every windowed layer variant a stack may hold, with a residual Add and a channel Concat. */
function oddModel(h: number, w: number): ModelProto {
  const b = new GraphBuilder("odd", { seed: 5 });
  const x = b.input("x", "float32", [1, 3, h, w]);
  const c1 = b.node("Conv", [x, b.weight("w1", [8, 3, 3, 3]), b.weight("b1", [8], { uniform: [-1, 1] })], {
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  });
  const r1 = b.node("Relu", [c1]);
  const p1 = b.node("MaxPool", [r1], {
    kernel_shape: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    ceil_mode: 1,
  });
  const d1 = b.node("Conv", [p1, b.weight("w2", [8, 8, 3, 3])], { dilations: [2, 2], pads: [2, 2, 2, 2] });
  const add = b.node("Add", [d1, p1]);
  const s1 = b.node("Conv", [add, b.weight("w3", [8, 8, 4, 4])], { strides: [2, 2], auto_pad: "SAME_UPPER" });
  const a1 = b.node("AveragePool", [s1], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], count_include_pad: 1 });
  const t1 = b.node("ConvTranspose", [a1, b.weight("wt", [8, 4, 3, 3])], {
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    output_padding: [1, 1],
  });
  const scales = b.constant("scales", "float32", [4], Float32Array.of(1, 1, 2, 2));
  const up = b.node("Resize", [t1, "", scales], { mode: "linear" });
  const scales4 = b.constant("scales4", "float32", [4], Float32Array.of(1, 1, 4, 4));
  const lo = b.node("Resize", [b.node("Conv", [a1, b.weight("w4", [4, 8, 1, 1])]), "", scales4], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "round_prefer_ceil",
  });
  const cat = b.node("Concat", [up, lo], { axis: 1 });
  const y = b.node("Sigmoid", [cat]);
  b.output(y);
  return b.toModel();
}

test("odd sizes, stride 2, dilation, SAME padding, padded and ceil-mode pooling, ConvTranspose, Resize: every tiling reproduces the model", async () => {
  for (const [h, w] of [
    [37, 29],
    [64, 48],
    [45, 23],
  ]) {
    const model = await analyzeModel(oddModel(h, w), { source: `odd ${h}x${w}` });
    const feeds = feedsOf(model);
    const want = await runModel(model.graph.model, feeds);
    const out = model.graph.outputs[0].name;
    const hOut = model.types.get(out)!.shape[2];
    for (const weights of [[1, 1], [1, 1, 1], [3, 1], [1, 2, 3, 1, 1], Array(hOut).fill(1)]) {
      const tiled = tileModel(model, [{ from: "x", to: out, tiles: weights.length, weights }]);
      assertOutputsClose(await runModel(tiled.model, feeds), want, `odd ${h}x${w} tiles [${weights.length}]`);
    }
  }
});

test("a halo one row short is caught: the tiled model no longer reproduces the model", async () => {
  const model = await analyzeModel(oddModel(37, 29), { source: "odd" });
  const feeds = feedsOf(model);
  const want = await runModel(model.graph.model, feeds);
  const out = model.graph.outputs[0].name;
  // A short stack (conv, relu, padded max pool, dilated conv, residual add): tile 1 starts inside the image.
  const tiled = tileModel(model, [{ from: "x", to: "add", tiles: 2 }]);
  assertOutputsClose(await runModel(tiled.model, feeds), want, "exact halo");
  // Tile 1's first layer reads its input rows through a Slice; start it one row later and pad that row
  // with zeros instead (the same shapes, one halo row short).
  const g = tiled.model.graph!;
  const conv = g.node.find((n) => n.name === "conv.tile1")!;
  const slice = g.node.find((n) => n.output[0] === conv.input[0])!;
  assert.equal(slice.opType, "Slice");
  const starts = g.initializer.find((t) => t.name === slice.input[1])!;
  const s0 = tensorToNumbers(starts)[0];
  assert.ok(s0 > 0, "tile 1 starts inside the image");
  new BigInt64Array(starts.rawData.buffer, starts.rawData.byteOffset, 1)[0] = BigInt(s0 + 1);
  const pads = conv.attribute.find((a) => a.name === "pads")!;
  pads.ints[0] += 1n;
  const short = await runModel(tiled.model, feeds);
  const { diff, scale } = maxDiff(short[out], want[out]);
  assert.ok(diff > 1e-5 * scale, `one row short must differ (diff ${diff})`);
});

test("row splits follow the weights, every tile at least one row", () => {
  const cases: [number, number[], number[]][] = [
    [10, [1, 1], [0, 5, 10]],
    [10, [3, 1], [0, 8, 10]],
    [3, [1, 1, 1], [0, 1, 2, 3]],
    [4, [100, 1, 1], [0, 2, 3, 4]],
    [7, [1, 2, 1], [0, 2, 5, 7]],
  ];
  for (const [h, w, cuts] of cases) {
    const rows = splitRows(h, w);
    assert.deepEqual([0, ...rows.map((r) => r.b)], cuts, `${h} rows by [${w}]`);
  }
});

test("bad tile stacks: one line naming the tensor or layer at fault", async () => {
  const model = await analyzeModel(buildZooModel("resnet18"), { source: "resnet18" });
  const gap = model.graph.nodes.find((n) => n.op === "GlobalAveragePool")!;
  const flatten = model.graph.nodes.find((n) => n.op === "Flatten")!;
  const last = model.graph.outputs[0].name;
  assert.throws(
    () => tileModel(model, [{ from: "input", to: "layer1.0.relu", tiles: 1000 }]),
    /--tiles 1000 is more than the 56 rows of tensor 'layer1.0.relu'/,
  );
  assert.throws(
    () => stackNodes(model, "layer4.1.relu", flatten.outputs[0]),
    new RegExp(`tile stack: tensor '${flatten.outputs[0]}' is not NCHW`),
  );
  assert.throws(
    () => stackNodes(model, "layer3.1.relu", gap.outputs[0]),
    new RegExp(`node '${gap.name}' \\(GlobalAveragePool\\) cannot be in a tile stack: it mixes positions`),
  );
  assert.throws(() => stackNodes(model, "input", last), /is not NCHW/);
  assert.throws(() => stackNodes(model, "input", "nope"), /no tensor named 'nope'/);
  assert.throws(
    () => stackNodes(model, "bn1.relu", "layer1.0.conv1"),
    /tensor 'maxpool' is also read by node 'layer1.0.add' outside the stack/,
  );
  for (const f of [
    () => tileModel(model, [{ from: "input", to: "layer1.0.relu", tiles: 1000 }]),
    () => stackNodes(model, "layer3.1.relu", gap.outputs[0]),
  ]) {
    try {
      f();
    } catch (err) {
      assert.equal((err as Error).message.split("\n").length, 1);
      assert.equal((err as Error).name, "ArgumentError");
    }
  }
});
