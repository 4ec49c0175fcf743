import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createSession, ort, randomTensor } from "../src/onnx/ort.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { branchySpec, type Fixture, writeFixture } from "./runtime-fixture.js";

let cluster: LocalCluster;
let fx: Fixture;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  fx = writeFixture(branchySpec(64));
  cluster = await startLocalWorkers([
    { name: "w0", cpus: [0] },
    { name: "w1", cpus: [1] },
    { name: "w2", cpus: [0, 1], threads: 1 },
  ]);
});

after(async () => {
  const pids = cluster.pids;
  await cluster.stop();
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});

test("local workers print their real endpoints and are pinned with taskset", () => {
  assert.equal(cluster.workers.length, 3);
  for (const w of cluster.workers) assert.match(w.endpoint, /^127\.0\.0\.1:[1-9]\d*$/);
  assert.equal(cluster.pinned, true);
});

test("3 workers, branchy model with a skip tensor: every output equals single-process onnxruntime", async () => {
  const pipeline = await deploy(fx.dir, cluster.workers, { token: cluster.token, maxInFlight: 4 });
  const whole = await createSession(fx.whole);
  const n = 48;
  const feeds = Array.from({ length: n }, (_, i) => ({ x: randomTensor("float32", [1, 64], i + 1) }));
  const report = await pipeline.runMany(feeds, { inFlight: 4, keepOutputs: true });
  assert.equal(report.completed, n, JSON.stringify(report.errors));
  assert.equal(report.failed, 0);
  assert.ok(report.latencyMs.p50 <= report.latencyMs.p95 && report.latencyMs.p95 <= report.latencyMs.p99);
  assert.ok(report.throughput > 0);
  for (let i = 0; i < n; i++) {
    const want = await whole.run(feeds[i]);
    const got = report.outputs?.[i];
    assert.ok(got, `request ${i} has no outputs`);
    for (const name of ["y", "z"]) {
      const a = want[name].data as Float32Array;
      const b = got[name].data as Float32Array;
      assert.deepEqual(got[name].dims, want[name].dims);
      const maxAbs = Math.max(...a.map(Math.abs));
      const diff = Math.max(...a.map((v, k) => Math.abs(v - b[k])));
      assert.ok(diff <= 1e-5 * maxAbs, `request ${i} output ${name}: max diff ${diff} > 1e-5 x ${maxAbs}`);
    }
  }
  const st = pipeline.stats();
  assert.equal(st.completed, n);
  assert.equal(st.inFlight, 0);
  assert.deepEqual(
    st.workers.map((w) => [w.name, w.stages]),
    [
      ["w0", [0]],
      ["w1", [1]],
      ["w2", [2]],
    ],
  );
  const ws = await pipeline.workerStats();
  assert.deepEqual(
    ws.map((w) => w.stages.map((s) => [s.stage, s.runs, s.errors])),
    [[[0, n, 0]], [[1, n, 0]], [[2, n, 0]]],
  );
  await pipeline.close();
  await whole.release();
});

test("infer pairs each output with its request under concurrency; stages can share a worker", async () => {
  // Stages 0 and 2 on w0, stage 1 on w1: tensors go w0 -> w1 -> w0 and c stays inside w0.
  const m = structuredClone(fx.manifest);
  m.stages[0].device = "w0";
  m.stages[1].device = "w1";
  m.stages[2].device = "w0";
  const pipeline = await deploy({ manifest: m, dir: fx.dir }, cluster.workers.slice(0, 2), {
    token: cluster.token,
    maxInFlight: 3,
  });
  const whole = await createSession(fx.whole);
  const inputs = Array.from({ length: 12 }, (_, i) => ({ x: randomTensor("float32", [1, 64], 100 + i) }));
  const outs = await Promise.all(inputs.map((f) => pipeline.infer(f)));
  for (const [i, out] of outs.entries()) {
    const want = (await whole.run(inputs[i])).y.data as Float32Array;
    const got = out.y.data as Float32Array;
    assert.ok(
      want.every((v, k) => Math.abs(v - got[k]) <= 1e-5 * Math.max(1, Math.abs(v))),
      `request ${i} got another request's output`,
    );
  }
  assert.equal(pipeline.stats().workers.find((w) => w.name === "w0")?.stages.length, 2);
  await pipeline.close();
  await whole.release();
});

test("feeds are checked against the manifest before anything is sent", async () => {
  const pipeline = await deploy(fx.dir, cluster.workers, { token: cluster.token });
  await assert.rejects(pipeline.infer({ x: randomTensor("float32", [1, 63]) }), {
    message: "input 'x' is float32 [1,63], the model takes float32 [1,64]",
  });
  await assert.rejects(pipeline.infer({ x: new ort.Tensor("int32", new Int32Array(64), [1, 64]) }), {
    message: "input 'x' is int32 [1,64], the model takes float32 [1,64]",
  });
  await assert.rejects(pipeline.infer({}), /input 'x' is missing/);
  await assert.rejects(
    pipeline.infer({ x: randomTensor("float32", [1, 64]), extra: randomTensor("float32", [1]) }),
    /input 'extra' is not an input of the model/,
  );
  assert.equal(pipeline.stats().sent, 0);
  // The pipeline still works after refused feeds.
  const out = await pipeline.infer({ x: randomTensor("float32", [1, 64]) });
  assert.deepEqual(out.y.dims, [1, 8]);
  await pipeline.close();
});
