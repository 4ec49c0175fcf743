import assert from "node:assert/strict";
import { before, test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import { localClusterPath } from "../src/cli/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { TiledCostModel } from "../src/cost/cost-tiled.js";
import { type Profile, profileModel } from "../src/cost/profile.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { typeBytes } from "../src/ir/graph.js";
import { tileModel } from "../src/ir/tile.js";
import { GraphBuilder } from "../src/onnx/builder.js";

/** Three 3x3 Conv+BatchNormalization(+Relu) layers with a residual Add: convolutions onnxruntime blocks. */
function residualCnn(): ReturnType<GraphBuilder["toModel"]> {
  const b = new GraphBuilder("residual-cnn");
  const x = b.input("x", "float32", [1, 16, 40, 40]);
  const bn = (t: string, c: number, name: string) => {
    const p = () => b.weight(`${name}.p`, [c], { uniform: [0.5, 1.5] });
    return b.node("BatchNormalization", [t, p(), p(), p(), p()], {}, name);
  };
  const conv = (t: string, cin: number, name: string) =>
    b.node("Conv", [t, b.weight(`${name}.w`, [32, cin, 3, 3])], { pads: [1, 1, 1, 1] }, name);
  const h1 = b.node("Relu", [bn(conv(x, 16, "conv1"), 32, "bn1")], {}, "relu1");
  const h2 = b.node("Relu", [bn(conv(h1, 32, "conv2"), 32, "bn2")], {}, "relu2");
  const h3 = bn(conv(h2, 32, "conv3"), 32, "bn3");
  b.output(b.node("Relu", [b.node("Add", [h3, h1], {}, "add")], {}, "relu3"));
  return b.toModel();
}

let model: AnalyzedModel;
let profile: Profile;
const cluster = loadCluster(localClusterPath());
const device = cluster.devices[0];

before(async () => {
  model = await analyzeModel(residualCnn(), { source: "residual-cnn" });
  profile = await profileModel(model.graph.model, { analyzed: model, source: "residual-cnn", runs: 5 });
});

async function priced(stacks: Parameters<typeof tileModel>[1], opts: Parameters<typeof tileModel>[2] = {}) {
  const base = costModelFor(model, cluster, { profiles: { [device.name]: profile } });
  const tiled = tileModel(model, stacks, opts);
  const tmodel = await analyzeModel(tiled.model, { source: "tiled", noFold: true });
  return { base, tiled, tmodel, cost: new TiledCostModel(base, model, tmodel, tiled.origin) };
}

test("a model tiled with no stacks is priced exactly as the model itself", async () => {
  const { base, tmodel, cost } = await priced([]);
  const all = (m: AnalyzedModel) => m.graph.nodes.filter((n) => !n.isConstant).map((n) => n.index);
  const want = base.segmentLatency(device, all(model));
  const got = cost.segmentLatency(device, all(tmodel));
  assert.ok(Math.abs(got - want) <= 1e-9 * want, `${got} vs ${want}`);
});

test("tile copies cost their original's time by their share of rows; a Slice of a blocked layer's output pays the layout conversion, a Conv crop a copy", async () => {
  const { base, tiled, tmodel, cost } = await priced([{ from: "x", to: "relu3", tiles: 2 }], {
    sliceCrops: true,
  });
  const times = base.nodeTimes(device);
  const lat = cost.nodeLatencies(device);
  const byName = new Map(model.graph.nodes.map((n) => [n.name, n.index]));
  for (const n of tmodel.graph.nodes) {
    const o = tiled.origin.get(n.name);
    if (!o) continue;
    const i = byName.get(o.node)!;
    // A layer fused into its anchor in the model is fused into its anchor's copy in the tile.
    const want = times.latency[i] * o.share;
    assert.ok(Math.abs(lat[n.index] - want) <= 1e-12, `${n.name}: ${lat[n.index]} vs ${want}`);
  }
  // relu1's output feeds conv2 (halo rows) and the residual Add (a Slice of its rows): that Slice reads a
  // layer onnxruntime runs blocked, so it is priced above a plain copy by the conversion of what it reads.
  assert.ok(profile.blocked.includes("conv1"), "conv1 runs in the blocked layout");
  assert.ok(profile.overhead.perByteLayout > 0);
  const slices = tmodel.graph.nodes.filter((n) => n.op === "Slice" && n.inputs[0].startsWith("relu1.tile"));
  assert.ok(slices.length > 0, "the residual reads relu1's rows through a Slice");
  for (const s of slices) {
    const copy = tmodel.costs[s.index].outputBytes / device.memoryBandwidth;
    const conversion = typeBytes(tmodel.types.get(s.inputs[0])) * profile.overhead.perByteLayout;
    assert.ok(lat[s.index] >= copy + conversion * (1 - 1e-9), `${s.name}: ${lat[s.index]}`);
  }
  // By default the same crops are one-hot depthwise Convs, which run in the layout they read: no conversion,
  // the kernel's rows read for each row written.
  const conv = await priced([{ from: "x", to: "relu3", tiles: 2 }]);
  const crops = conv.tmodel.graph.nodes.filter(
    (n) => n.op === "Conv" && n.inputs[0].startsWith("relu1.tile") && n.inputs[1].endsWith(".crop_w"),
  );
  assert.equal(crops.length, slices.length);
  assert.equal(
    conv.tmodel.graph.nodes.filter((n) => n.op === "Slice" && n.inputs[0].startsWith("relu1.tile")).length,
    0,
  );
  const clat = conv.cost.nodeLatencies(device);
  for (const c of crops)
    assert.ok(
      Math.abs(
        clat[c.index] -
          ((conv.tmodel.types.get(c.inputs[1])!.shape[2] + 1) * conv.tmodel.costs[c.index].outputBytes) /
            device.memoryBandwidth,
      ) <= 1e-12,
      `${c.name}: ${clat[c.index]}`,
    );
});
