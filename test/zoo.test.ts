import assert from "node:assert/strict";
import { test } from "node:test";
import { type ModelProto, TensorProto_DataType as DT, type ValueInfoProto } from "onnx-buf";
import { dtypeFromOnnx } from "../src/onnx/dtype.js";
import { ArgumentError } from "../src/errors.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { createSession, ort, randomTensor } from "../src/onnx/ort.js";
import { seededRandom } from "../src/onnx/prng.js";
import { numel, tensorDims } from "../src/onnx/tensor.js";
import { buildZooModel, type ZooTensor, zooInfo, zooNames } from "../src/zoo/index.js";

/** Elements of all float32 initializers, and of the trainable ones (no BN running stats, no 0-d constants). */
function countParams(m: ModelProto): { all: number; trainable: number } {
  let all = 0;
  let trainable = 0;
  for (const t of m.graph!.initializer) {
    if (t.dataType !== DT.FLOAT) continue;
    const dims = tensorDims(t);
    all += numel(dims);
    if (dims.length > 0 && !/\.running_(mean|var)$/.test(t.name)) trainable += numel(dims);
  }
  return { all, trainable };
}

function dimsOf(v: ValueInfoProto): number[] {
  const tt = v.type?.value;
  assert.equal(tt?.case, "tensorType");
  return tt.value.shape!.dim.map((d) => Number(d.value.value));
}

function dtypeOf(v: ValueInfoProto): string {
  const tt = v.type?.value;
  assert.equal(tt?.case, "tensorType");
  return dtypeFromOnnx(tt.value.elemType) ?? `onnx type ${tt.value.elemType}`;
}

/**
 * A float input gets random values, an integer input valid ones: uniform in its range, or for a 0/1 mask
 * ones over the first 3/4 of each row (padding after the text), so masked and unmasked positions both occur.
 */
function feedFor(t: ZooTensor, seed: number): ort.Tensor {
  if (t.dtype === "float32") return randomTensor("float32", t.shape, seed);
  assert.ok(t.range, `${t.name}: an integer input states its valid range`);
  const [lo, hi] = t.range;
  const rnd = seededRandom(seed);
  const row = t.shape[t.shape.length - 1];
  const value = (i: number) =>
    hi - lo === 2 ? Number(i % row < (3 * row) / 4) : lo + Math.floor(rnd() * (hi - lo));
  const data = BigInt64Array.from({ length: numel(t.shape) }, (_, i) => BigInt(value(i)));
  return new ort.Tensor("int64", data, t.shape);
}

const within = (got: number, want: number, tol: number) => Math.abs(got / want - 1) <= tol;

test("zoo lists the models of the table", () => {
  assert.deepEqual(zooNames(), [
    "alexnet",
    "vgg16",
    "resnet18",
    "resnet50",
    "googlenet",
    "squeezenet1_1",
    "mobilenet_v2",
    "efficientnet_b0",
    "regnet_x_400mf",
    "densenet121",
    "shufflenet_v2_x1_0",
    "mobilenet_v3_small",
    "ssdlite_fpn",
    "unet",
    "vit_tiny",
    "bert_mini",
  ]);
  const info = zooInfo("resnet50");
  assert.equal(info.params, 25_557_032);
  info.inputShape[0] = 99;
  assert.equal(zooInfo("resnet50").inputShape[0], 1, "zooInfo returns a copy");
});

// Each model is built once (vgg16 alone is 553 MB of weights) and checked in subtests.
for (const name of zooNames()) {
  test(`${name}: builds, matches its reference figures, runs in onnxruntime`, async (t) => {
    const info = zooInfo(name);
    const model = buildZooModel(name);

    await t.test("ONNX interface: opset 17, the inputs and outputs zooInfo states", () => {
      assert.equal(model.opsetImport[0].version, 17n);
      const g = model.graph!;
      const io = (vs: ValueInfoProto[]) =>
        vs.map((v) => ({ name: v.name, dtype: dtypeOf(v), shape: dimsOf(v) }));
      const strip = (ts: ZooTensor[]) => ts.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
      assert.deepEqual(io(g.input), strip(info.inputs));
      assert.deepEqual(io(g.output), strip(info.outputs));
      assert.deepEqual(info.inputs[0].shape, info.inputShape);
      assert.deepEqual(info.outputs[0].shape, info.outputShape);
    });

    await t.test("parameters within 2% of the reference (all float initializers)", () => {
      const { all, trainable } = countParams(model);
      assert.ok(within(all, info.params, 0.02), `${name}: ${all} params vs reference ${info.params}`);
      // The trainable tensors alone are the torchvision architecture exactly.
      assert.equal(trainable, info.params);
    });

    await t.test("MACs within 5% of the reference (analyzeModel)", async () => {
      const { totals } = await analyzeModel(model, { source: name });
      const gmacs = totals.macs / 1e9;
      assert.ok(
        within(gmacs, info.gmacs, 0.05),
        `${name}: ${gmacs.toFixed(3)} GMACs vs reference ${info.gmacs}`,
      );
    });

    await t.test("runs in onnxruntime with finite, non-constant outputs of the right shape", async () => {
      const session = await createSession(model, { source: name });
      try {
        const feeds = Object.fromEntries(info.inputs.map((t, i) => [t.name, feedFor(t, 3 + i)]));
        const outputs = await session.run(feeds);
        for (const o of info.outputs) {
          const out = outputs[o.name];
          assert.deepEqual(out.dims, o.shape);
          const data = out.data as Float32Array;
          let min = Number.POSITIVE_INFINITY;
          let max = Number.NEGATIVE_INFINITY;
          for (const v of data) {
            assert.ok(Number.isFinite(v), `${name}: non-finite ${o.name} ${v}`);
            min = Math.min(min, v);
            max = Math.max(max, v);
          }
          assert.ok(max - min > 1e-4, `${name}: degenerate ${o.name} range [${min}, ${max}]`);
          assert.ok(Math.max(-min, max) < 1e3, `${name}: ${o.name} blows up (${min}, ${max})`);
        }
      } finally {
        await session.release();
      }
    });
  });
}

test("the same seed gives byte-identical models, another seed other weights", () => {
  for (const name of ["resnet18", "vit_tiny"]) {
    const a = encodeModel(buildZooModel(name, { seed: 7 }));
    const b = encodeModel(buildZooModel(name, { seed: 7 }));
    assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${name}: seed 7 twice differs`);
    const other = buildZooModel(name, { seed: 8 });
    const c = encodeModel(other);
    assert.equal(c.length, a.length, "same architecture, same size");
    assert.ok(!Buffer.from(a).equals(Buffer.from(c)), `${name}: seeds 7 and 8 give the same bytes`);
    const w7 = buildZooModel(name, { seed: 7 }).graph!.initializer[0];
    const w8 = other.graph!.initializer[0];
    assert.equal(w7.name, w8.name);
    assert.ok(!Buffer.from(w7.rawData).equals(Buffer.from(w8.rawData)), "first weight differs");
  }
  const dflt = encodeModel(buildZooModel("squeezenet1_1"));
  assert.ok(Buffer.from(dflt).equals(Buffer.from(encodeModel(buildZooModel("squeezenet1_1", { seed: 1 })))));
});

test("batch option sets the batch dimension of input and output", async () => {
  for (const name of ["vit_tiny", "unet"]) {
    const info = zooInfo(name);
    const shape = [2, ...info.inputShape.slice(1)];
    const model = buildZooModel(name, { batch: 2 });
    assert.deepEqual(dimsOf(model.graph!.input[0]), shape);
    const session = await createSession(model, { source: name });
    try {
      const { output } = await session.run({ input: randomTensor("float32", shape, 5) });
      assert.deepEqual(output.dims, [2, ...info.outputShape.slice(1)]);
      const data = output.data as Float32Array;
      const half = data.length / 2;
      // Different random images give different rows: the batch items are not mixed up or broadcast.
      assert.ok(data.subarray(0, half).some((v, i) => v !== data[half + i]));
    } finally {
      await session.release();
    }
  }
});

test("unknown names and bad options are refused", () => {
  const isUnknown = (e: unknown) =>
    e instanceof ArgumentError &&
    e.code === "UNKNOWN_MODEL" &&
    /^unknown zoo model 'foo' \(available: alexnet, vgg16, .*vit_tiny, bert_mini\)$/.test(e.message);
  assert.throws(() => buildZooModel("foo"), isUnknown);
  assert.throws(() => zooInfo("foo"), isUnknown);
  assert.throws(
    () => buildZooModel("resnet18", { batch: 0 }),
    (e: unknown) => e instanceof ArgumentError && e.code === "BAD_ARGUMENT" && /batch/.test(e.message),
  );
});
