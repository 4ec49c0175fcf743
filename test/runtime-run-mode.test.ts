import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { createSession, ort, randomTensor } from "../src/onnx/ort.js";
import { backgroundStages, colocatedStages, deploy } from "../src/runtime/coordinator/deploy.js";
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
    const fx = longStage(256, 100); // 26.8 GMACs: about 0.35 s on a fast core, seconds on a slow one
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
        assert.ok(runMs > 100, `the stage ran in ${runMs.toFixed(0)} ms: too short to watch`);
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

test("stages of one worker count as colocated only when they may run at the same time", () => {
  // x -> s0 -> a; a -> s1 -> b; a -> s2 -> c; b, c -> s3 -> y: s1 and s2 are unordered, the rest a chain.
  const stages = [
    { inputs: ["x"], outputs: ["a"] },
    { inputs: ["a"], outputs: ["b"] },
    { inputs: ["a"], outputs: ["c"] },
    { inputs: ["b", "c"], outputs: ["y"] },
  ];
  const oneWorker = [["w"], ["w"], ["w"], ["w"]];
  assert.deepEqual(colocatedStages(stages, oneWorker, 1), [[1], [2], [2], [1]]);
  assert.deepEqual(colocatedStages(stages, oneWorker, 2), [[4], [4], [4], [4]]);
  // s0 -> s3 through s1 (transitively ordered) on w0; s1 and s2 on different workers.
  const spread = [["w0"], ["w1"], ["w2"], ["w0"]];
  assert.deepEqual(colocatedStages(stages, spread, 1), [[1], [1], [1], [1]]);
  assert.deepEqual(colocatedStages(stages, spread, 3), [[2], [1], [1], [2]]);
  // A replicated stage: each replica's worker counts its own stages.
  const chain = stages.slice(0, 2);
  assert.deepEqual(colocatedStages(chain, [["w0"], ["w0", "w1"]], 4), [[2], [2, 1]]);
  assert.deepEqual(colocatedStages(chain, [["w0"], ["w0", "w1"]], 1), [[1], [1, 1]]);
});

test("a replica runs in the background only beside a stage of one replica on its worker that it may overlap", () => {
  // Stage 0 on w0 alone (every request passes through it), stage 1 replicated on w0 and w1.
  assert.deepEqual(backgroundStages([["w0"], ["w0", "w1"]], [[2], [2, 1]]), [[false], [true, false]]);
  // One request at a time through a chain: the two never run together, nothing to put first.
  assert.deepEqual(backgroundStages([["w0"], ["w0", "w1"]], [[1], [1, 1]]), [[false], [false, false]]);
  // Both stages replicated: no stage takes every request, so none runs behind another.
  assert.deepEqual(
    backgroundStages(
      [
        ["w0", "w1"],
        ["w0", "w1"],
      ],
      [
        [2, 2],
        [2, 2],
      ],
    ),
    [
      [false, false],
      [false, false],
    ],
  );
  // The single stage on another worker: w0's replica has nothing beside it to wait for it.
  assert.deepEqual(backgroundStages([["w1"], ["w0", "w1"]], [[2], [1, 2]]), [[false], [false, true]]);
});

test("auto runs a worker's chained stages inline with one request in flight, on threads with more", async () => {
  const t = { dtype: "float32" as const, shape: [1, 16] };
  const fx = writeFixture({
    tensors: { x: t, h: t, y: t },
    weights: { W: [16, 16], V: [16, 16] },
    inputs: ["x"],
    outputs: ["y"],
    stages: [
      { inputs: ["x"], outputs: ["h"], ops: [{ op: "MatMul", inputs: ["x", "W"], output: "h" }] },
      { inputs: ["h"], outputs: ["y"], ops: [{ op: "MatMul", inputs: ["h", "V"], output: "y" }] },
    ],
  });
  for (const st of fx.manifest.stages) st.device = "w0";
  writeFileSync(join(fx.dir, "manifest.json"), JSON.stringify(fx.manifest));
  let cluster: LocalCluster | undefined;
  try {
    cluster = await startLocalWorkers([{ name: "w0" }]);
    for (const [maxInFlight, want] of [
      [1, "inline"],
      [4, "thread"],
    ] as const) {
      const pipeline = await deploy(fx.dir, cluster.workers, { token: cluster.token, maxInFlight });
      try {
        assert.deepEqual(
          pipeline.stageLoads.map((l) => l.runs),
          [want, want],
          `maxInFlight ${maxInFlight}`,
        );
        const out = await pipeline.infer({ x: randomTensor("float32", [1, 16], 5) });
        assert.deepEqual(out.y.dims, [1, 16]);
      } finally {
        await pipeline.close();
      }
    }
  } finally {
    await cluster?.stop();
  }
});
