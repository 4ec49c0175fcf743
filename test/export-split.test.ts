import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ArgumentError } from "../src/errors.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { readManifest } from "../src/export/manifest-io.js";
import { SequentialRunner } from "../src/export/run-sequential.js";
import { type resolveSplit, splitModel } from "../src/export/split.js";
import { buildStages } from "../src/export/stage.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { decodeModel } from "../src/onnx/model-io.js";
import { createSession, type ort, randomTensor } from "../src/onnx/ort.js";
import { enumerateCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { assertOutputsClose } from "./helpers/compare.js";

/**
 * A branchy model: two parallel branches joined by Concat, a residual skip, a tensor read three stages
 * later, an early graph output, a weight shared by two nodes, and a Constant node read in two places.
 */
export function branchyModel() {
  const b = new GraphBuilder("branchy", { seed: 3 });
  const x = b.input("x", "float32", [1, 4, 8, 8]);
  const w0 = b.weight("w0", [8, 4, 3, 3]);
  const stem = b.node("Relu", [b.node("Conv", [x, w0], { pads: [1, 1, 1, 1] }, "stem_conv")], {}, "stem");
  const wa = b.weight("wa", [8, 8, 1, 1]);
  const left = b.node("Relu", [b.node("Conv", [stem, wa], {}, "left_conv")], {}, "left");
  const right = b.node("Sigmoid", [b.node("Conv", [stem, wa], {}, "right_conv")], {}, "right"); // shares wa
  const cat = b.node("Concat", [left, right], { axis: 1 }, "cat");
  const wm = b.weight("wm", [8, 16, 1, 1]);
  const merged = b.node("Conv", [cat, wm], {}, "merge");
  const half = b.node("Constant", [], { value_floats: [0.5] }, "half");
  const res = b.node("Add", [merged, b.node("Mul", [stem, half], {}, "scale")], {}, "residual");
  const pooled = b.node("GlobalAveragePool", [res], {}, "pool");
  const flat = b.node("Flatten", [pooled], {}, "flat");
  const fc = b.weight("fc", [8, 8]);
  const skip = b.node("Mul", [flat, half], {}, "skip");
  const hidden = b.node("Add", [b.node("MatMul", [flat, fc], {}, "fc"), skip], {}, "hidden");
  const logits = b.node("MatMul", [hidden, b.weight("head", [8, 3])], {}, "logits");
  b.output(logits, "float32", [1, 3]);
  b.output(stem, "float32", [1, 8, 8, 8]); // an early output of the model
  return b.toModel();
}

async function reference(model: AnalyzedModel, feeds: Record<string, ort.Tensor>) {
  const s = await createSession(model.graph.model);
  return s.run(feeds);
}

function feedsFor(model: AnalyzedModel): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  model.graph.inputs.forEach((v, i) => {
    const t = model.types.get(v.name)!;
    feeds[v.name] = randomTensor(t.dtype, t.shape, 11 + i);
  });
  return feeds;
}

test("every single cut of a branchy model reproduces the full model", async () => {
  const model = await analyzeModel(branchyModel());
  const order = choosePartitionOrder(model);
  const cuts = enumerateCuts(model, order);
  assert.equal(cuts.length, order.nodes.length - 1);
  assert.ok(
    cuts.some((c) => c.tensors.length > 1),
    "has multi-tensor cuts",
  );
  const feeds = feedsFor(model);
  const want = await reference(model, feeds);
  for (const c of cuts) {
    const stages = buildStages(model, assignByBoundaries(model, order, [c.index]));
    assert.deepEqual(
      [...stages[1].inputs].sort(),
      [...c.tensors].sort(),
      `cut ${c.index}: stage 1 reads exactly the crossing tensors`,
    );
    const runner = await SequentialRunner.fromStages(
      stages,
      model.graph.outputs.map((v) => v.name),
    );
    assertOutputsClose(await runner.run(feeds), want, `cut ${c.index}`);
    await runner.close();
  }
});

test("3- and 4-stage splits, with a tensor skipping a stage, reproduce the full model", async () => {
  const model = await analyzeModel(branchyModel());
  const order = choosePartitionOrder(model);
  const feeds = feedsFor(model);
  const want = await reference(model, feeds);
  const n = order.nodes.length;
  const splits = [
    [2, 5],
    [3, 7, 10],
    [1, n - 2],
    [Math.floor(n / 3), Math.floor((2 * n) / 3), n - 1],
  ];
  let skipSeen = false;
  for (const cuts of splits) {
    const stages = buildStages(model, assignByBoundaries(model, order, cuts));
    // A stage input made two or more stages earlier skips a stage.
    const madeIn = new Map<string, number>();
    for (const s of stages) for (const o of s.outputs) madeIn.set(o, s.index);
    for (const s of stages)
      for (const i of s.inputs)
        if ((madeIn.get(i) ?? -1) >= 0 && s.index - madeIn.get(i)! >= 2) skipSeen = true;
    const runner = await SequentialRunner.fromStages(
      stages,
      model.graph.outputs.map((v) => v.name),
    );
    assertOutputsClose(await runner.run(feeds), want, `cuts ${cuts}`);
    await runner.close();
  }
  assert.ok(skipSeen, "some split has a tensor that skips a stage");
});

test("stage models hold only what they use; shared weights and Constants are copied", async () => {
  const model = await analyzeModel(branchyModel());
  const order = choosePartitionOrder(model);
  const pos = (name: string) => order.position[model.graph.node(name).index];
  // Cut between the two convs that share 'wa', and between the two readers of the Constant 'half'.
  const a = Math.max(pos("left_conv"), pos("right_conv"));
  const c = Math.max(pos("scale"), pos("skip"));
  const stages = buildStages(model, assignByBoundaries(model, order, [a, c]));
  const inits = stages.map((s) => s.model.graph!.initializer.map((t) => t.name).sort());
  assert.ok(inits[0].includes("wa") && inits[1].includes("wa"), "shared weight copied into both stages");
  assert.ok(!inits[1].includes("w0"), "stage 1 does not carry the stem weight");
  const consts = stages.map((s) => s.model.graph!.node.filter((n) => n.opType === "Constant").length);
  assert.ok(consts[1] >= 1 && consts[2] >= 1, "Constant copied into each stage that reads it");
  for (const s of stages) {
    assert.equal(s.model.irVersion, model.graph.model.irVersion);
    assert.deepEqual(s.model.opsetImport, model.graph.model.opsetImport);
    const ins = s.model.graph!.input.map((i) => i.name);
    assert.deepEqual(ins, s.inputs);
    // Every node input is a stage input, an initializer, or made inside the stage.
    const known = new Set([
      ...ins,
      ...s.model.graph!.initializer.map((t) => t.name),
      ...s.model.graph!.node.flatMap((n) => n.output),
    ]);
    for (const n of s.model.graph!.node)
      for (const i of n.input) assert.ok(i === "" || known.has(i), `stage ${s.index} reads unknown ${i}`);
  }
});

test("split writes stage files and a manifest whose data flows forward", async () => {
  const model = await analyzeModel(branchyModel());
  const dir = mkdtempSync(join(tmpdir(), "cleave-split-"));
  try {
    const { manifest } = splitModel(model, { stages: 3 }, join(dir, "out"), { modelPath: "branchy.onnx" });
    assert.equal(manifest.stages.length, 3);
    const { manifest: back } = readManifest(join(dir, "out"));
    assert.deepEqual(back, manifest);
    assert.deepEqual(readdirSync(join(dir, "out")).sort(), [
      "manifest.json",
      "stage-0.onnx",
      "stage-1.onnx",
      "stage-2.onnx",
    ]);
    for (const s of manifest.stages) {
      assert.ok(s.macs >= 0 && s.nodes > 0 && s.sha256.length === 64);
      decodeModel(readFileSync(join(dir, "out", s.file)));
    }
    assert.equal(
      manifest.stages.reduce((a, s) => a + s.macs, 0),
      model.totals.macs,
    );
    const feeds = feedsFor(model);
    const runner = await SequentialRunner.open(join(dir, "out"));
    assertOutputsClose(await runner.run(feeds), await reference(model, feeds), "from files");
    await runner.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad cuts are refused with one clear line and nothing is written", async () => {
  const model = await analyzeModel(branchyModel());
  const n = choosePartitionOrder(model).nodes.length;
  const stem = model.graph.node("stem").outputs[0];
  const cat = model.graph.node("cat").outputs[0];
  const cases: Array<[Parameters<typeof resolveSplit>[1], RegExp]> = [
    [{ cuts: ["no_such_tensor"] }, /cut tensor 'no_such_tensor' is not a tensor/],
    [{ cuts: [cat, stem] }, /cuts out of order/],
    [{ cuts: ["5", "3"] }, /cut 3 comes before cut 5/],
    [{ cuts: ["4", "4"] }, /cut 4 repeats cut 4/],
    [{ cuts: [String(n)] }, /out of range/],
    [{ stages: n + 1 }, /at most \d+ stages/],
    [{ cuts: ["x"] }, /graph input or weight/],
    [
      {
        assignment: {
          stageOf: Int32Array.from(
            model.graph.nodes.map((nd) => (nd.name === "stem" ? 1 : nd.isConstant ? -1 : 0)),
          ),
          count: 2,
        },
      },
      /data would flow backwards/,
    ],
    [
      {
        assignment: {
          stageOf: Int32Array.from(model.graph.nodes.map((nd) => (nd.isConstant ? -1 : 0))),
          count: 2,
        },
      },
      /stage 1 would be empty/,
    ],
  ];
  const dir = mkdtempSync(join(tmpdir(), "cleave-badsplit-"));
  try {
    for (const [spec, re] of cases) {
      const out = join(dir, "out");
      assert.throws(
        () => splitModel(model, spec, out, { modelPath: "m.onnx" }),
        (e: unknown) => e instanceof ArgumentError && re.test(e.message) && !e.message.includes("\n"),
        JSON.stringify(spec, (_k, v) => (v instanceof Int32Array ? "[assignment]" : v)),
      );
      assert.ok(!existsSync(out), "nothing written");
    }
    assert.deepEqual(readdirSync(dir), [], "no temporary folders left");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
