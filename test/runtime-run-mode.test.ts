import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { createSession, ort, randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { openStage } from "../src/runtime/worker/stage-runner.js";
import { writeFixture } from "./runtime-fixture.js";

/** One stage of `n` MatMul + Tanh layers on a [rows, 1024] input: long enough to watch a worker during it. */
function longStage(rows: number, n: number) {
  const t = { dtype: "float32" as const, shape: [rows, 1024] };
  const tensors: Record<string, typeof t> = { x: t };
  const ops = [];
  let prev = "x";
  for (let i = 0; i < n; i++) {
    tensors[`m${i}`] = t;
    tensors[`h${i}`] = t;
    ops.push({ op: "MatMul", inputs: [prev, "W"], output: `m${i}` });
    ops.push({ op: "Tanh", inputs: [`m${i}`], output: `h${i}` });
    prev = `h${i}`;
  }
  return writeFixture({
    tensors,
    weights: { W: [1024, 1024] },
    inputs: ["x"],
    outputs: [prev],
    stages: [{ inputs: ["x"], outputs: [prev], ops }],
  });
}

// auto runs a worker's only stage inline.
for (const runs of ["thread", "inline", "auto"] as const)
  test(`a worker answers while a stage runs (runs: ${runs}): on a thread at once, inline after the run`, async () => {
    const fx = longStage(256, 40); // 10.7 GMACs: a few hundred ms on a fast core, seconds here
    let cluster: LocalCluster | undefined;
    try {
      cluster = await startLocalWorkers([{ name: "w0" }], { runs });
      const pipeline = await deploy(fx.dir, cluster.workers, { token: cluster.token });
      try {
        const whole = await createSession(fx.whole);
        const out = fx.manifest.outputs[0].name;
        const x = randomTensor("float32", [256, 1024], 3);
        const warm = performance.now();
        await pipeline.infer({ x });
        const runMs = performance.now() - warm;
        assert.ok(runMs > 150, `the stage ran in ${runMs.toFixed(0)} ms: too short to watch`);
        let doneAt = 0;
        const result = pipeline.infer({ x }).then((r) => {
          doneAt = performance.now();
          return r;
        });
        // The input has arrived and the run begun well before a tenth of it has passed.
        await new Promise((r) => setTimeout(r, Math.min(60, runMs / 10)));
        const [stats] = await pipeline.workerStats(30000);
        const statsAt = performance.now();
        const got = await result;
        const runsSeen = stats.stages[0].runs;
        if (runs === "thread") {
          assert.equal(runsSeen, 1, "answered during the second run (the first one counted)");
          assert.ok(statsAt < doneAt, "the answer came before the run ended");
        } else assert.equal(runsSeen, 2, "inline, the worker answers once the run is over");
        const want = (await whole.run({ x }))[out].data as Float32Array;
        const have = got[out].data as Float32Array;
        let diff = 0;
        for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(want[i] - have[i]));
        assert.ok(diff <= 1e-5, `max diff ${diff}`);
        await whole.release();
      } finally {
        await pipeline.close();
      }
    } finally {
      await cluster?.stop();
    }
  });

test("a stage thread returns every output dtype a frame carries, as onnxruntime does on the calling thread", async () => {
  const g = new GraphBuilder("dtypes");
  g.input("x", "float32", [2, 3]);
  g.node("Cast", ["x"], { to: 7 }, "i64");
  g.node("Cast", ["x"], { to: 9 }, "b");
  g.node("Cast", ["x"], { to: 10 }, "f16");
  g.node("Cast", ["x"], { to: 3 }, "i8");
  g.node("Cast", ["x"], { to: 11 }, "f64");
  g.node("Relu", ["x"], {}, "r");
  for (const [n, d] of [
    ["i64", "int64"],
    ["b", "bool"],
    ["f16", "float16"],
    ["i8", "int8"],
    ["f64", "float64"],
    ["r", "float32"],
  ] as const)
    g.output(n, d, [2, 3]);
  const bytes = encodeModel(g.toModel());
  const x = new ort.Tensor("float32", Float32Array.from([-2.5, -1, 0, 0.5, 3, 100]), [2, 3]);
  const names = ["i64", "b", "f16", "i8", "f64", "r"];
  const inline = await createSession(bytes);
  const want = await inline.run({ x }, names);
  const runner = await openStage({ model: bytes, threads: 1, file: "dtypes.onnx" }, "thread");
  try {
    const back: ArrayBuffer[] = [];
    const r = await runner.run({ x }, names, new Set(["x"]), (b) => back.push(b));
    for (const n of names) {
      assert.equal(r.outputs[n].type, want[n].type, n);
      assert.deepEqual(r.outputs[n].dims, want[n].dims, n);
      assert.deepEqual(
        Array.from(r.outputs[n].data as ArrayLike<unknown>),
        Array.from(want[n].data as ArrayLike<unknown>),
        n,
      );
    }
    assert.equal(back.length, 1, "the moved input came back");
    assert.deepEqual([...new Float32Array(back[0])], [-2.5, -1, 0, 0.5, 3, 100]);
    assert.equal(x.data.length, 0, "the caller's view of a moved input is empty");
    assert.ok(r.ms > 0 && r.cpuMs >= 0);
    // A failing run rejects with onnxruntime's message and leaves the stage usable.
    const bad = new ort.Tensor("float32", new Float32Array(4), [2, 2]);
    await assert.rejects(
      runner.run({ x: bad }, names, new Set(), () => {}),
      /dimension|shape|Got/i,
    );
    const again = await runner.run(
      { x: new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]) },
      ["r"],
      new Set(),
      () => {},
    );
    assert.deepEqual([...(again.outputs.r.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  } finally {
    await runner.release();
    await inline.release();
  }
  await assert.rejects(
    openStage({ model: new Uint8Array([1, 2, 3]), threads: 1, file: "junk.onnx" }, "thread"),
    /junk\.onnx: onnxruntime cannot load it/,
  );
});
