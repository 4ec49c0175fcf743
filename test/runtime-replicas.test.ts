import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Manifest } from "../src/export/manifest.js";
import { createSession, type ort, randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/deploy.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/local-cluster.js";
import type { Pipeline, Tensors } from "../src/runtime/pipeline.js";
import { assertOutputsClose } from "./helpers/compare.js";
import { branchySpec, type Fixture, type FixtureSpec, writeFixture } from "./runtime-fixture.js";

const WIDTH = 48;
let cluster: LocalCluster;
let branchy: Fixture;
let single: Fixture;
let whole: ort.InferenceSession;

/** The fixture's manifest with each stage's replica group named (`device` = the first). */
function withGroups(fx: Fixture, groups: string[][]): { manifest: Manifest; dir: string } {
  const manifest: Manifest = {
    ...fx.manifest,
    stages: fx.manifest.stages.map((s, i) => ({
      ...s,
      device: groups[i][0],
      ...(groups[i].length > 1 ? { devices: groups[i] } : {}),
    })),
  };
  return { manifest, dir: fx.dir };
}

/** The branchy model as one stage (every op in it). */
function oneStage(spec: FixtureSpec): FixtureSpec {
  return {
    ...spec,
    stages: [{ inputs: spec.inputs, outputs: spec.outputs, ops: spec.stages.flatMap((s) => s.ops) }],
  };
}

const feedsOf = (i: number): Tensors => ({ x: randomTensor("float32", [1, WIDTH], i + 1) });

/** Checks every request's outputs against the whole model run in this process on the same feeds. */
async function checkOutputs(outputs: ReadonlyArray<Tensors | undefined>, first = 0): Promise<void> {
  for (let i = 0; i < outputs.length; i++) {
    const got = outputs[i];
    assert.ok(got, `request ${i} has no outputs`);
    const want = (await whole.run(feedsOf(first + i))) as Tensors;
    assertOutputsClose(got, want, `request ${first + i}`);
  }
}

/** Sum of the runs each worker made of `stage`, by worker name (the workers' own counters). */
async function runsOf(p: Pipeline, stage: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const w of await p.workerStats()) {
    const s = w.stages.find((st) => st.stage === stage);
    if (s) out[w.worker] = s.runs;
  }
  return out;
}

before(async () => {
  const spec = branchySpec(WIDTH);
  branchy = writeFixture(spec);
  single = writeFixture(oneStage(spec));
  whole = await createSession(branchy.whole);
  cluster = await startLocalWorkers([{ name: "a" }, { name: "b" }, { name: "c" }, { name: "d" }]);
});

after(async () => {
  await whole.release();
  await cluster.stop();
});

test("a replicated middle stage: every output equals the whole model's, both replicas ran", async () => {
  // Stage 2 reads `c`, which skips the replicated stage 1, and `x` from the coordinator.
  const p = await deploy(withGroups(branchy, [["a"], ["b", "c"], ["d"]]), cluster.workers, {
    token: cluster.token,
  });
  try {
    assert.equal(p.stats().stages[1].replicas.length, 2);
    const n = 60;
    const r = await p.runMany({ count: n, feeds: feedsOf }, { keepOutputs: true });
    assert.equal(r.completed, n, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? []);
    const st = p.stats();
    const [rb, rc] = st.stages[1].replicas;
    assert.deepEqual([rb.device, rc.device], ["b", "c"]);
    assert.ok(rb.completed > 0 && rc.completed > 0, `replica counts ${rb.completed}/${rc.completed}`);
    assert.equal(rb.completed + rc.completed, n);
    for (const x of st.stages.flatMap((s) => s.replicas)) {
      assert.equal(x.dispatched, x.completed + x.failed + x.outstanding);
      assert.equal(x.outstanding, 0);
    }
    // The workers agree: each replica ran the requests the coordinator sent it, the other workers all.
    const runs = await runsOf(p, 1);
    assert.deepEqual(runs, { b: rb.completed, c: rc.completed });
    assert.deepEqual(await runsOf(p, 2), { d: n });
    // Default in-flight limit: 2 per worker.
    assert.equal(st.sent, n);
  } finally {
    await p.close();
  }
});

test("a worker runs a stage and one replica of the next; each tensor reaches only the chosen replica", async () => {
  const p = await deploy(withGroups(branchy, [["a"], ["a", "b"], ["c"]]), cluster.workers, {
    token: cluster.token,
    maxInFlight: 6,
  });
  try {
    const n = 40;
    const r = await p.runMany({ count: n, feeds: feedsOf }, { keepOutputs: true });
    assert.equal(r.completed, n, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? []);
    const runs = await runsOf(p, 1);
    assert.ok(runs.a > 0 && runs.b > 0, JSON.stringify(runs));
    assert.equal(runs.a + runs.b, n);
  } finally {
    await p.close();
  }
});

test("pure data parallelism: the whole model on two workers, weighted 3:1", async () => {
  const p = await deploy(withGroups(single, [["b", "d"]]), cluster.workers, {
    token: cluster.token,
    replicaWeights: (_stage, device) => (device === "b" ? 3 : 1),
  });
  try {
    const first = await p.infer(feedsOf(0));
    await checkOutputs([first]);
    // One request at a time: the weights alone decide before anything is measured, then measured times.
    assert.equal(p.stats().stages[0].replicas[0].completed, 1);
    const n = 40;
    const r = await p.runMany({ count: n, feeds: (i) => feedsOf(i + 1) }, { keepOutputs: true });
    assert.equal(r.completed, n, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? [], 1);
    const [rb, rd] = p.stats().stages[0].replicas;
    assert.ok(rb.completed > 0 && rd.completed > 0, `${rb.completed}/${rd.completed}`);
    assert.equal(rb.weight, 3);
    assert.ok(rb.serviceMs !== undefined && rd.serviceMs !== undefined);
  } finally {
    await p.close();
  }
});

test("a replica killed mid-run: every request completes once and correctly; losing the last one fails explicitly", async () => {
  const own = await startLocalWorkers([{ name: "k0" }, { name: "k1" }, { name: "k2" }, { name: "k3" }]);
  let p: Pipeline | undefined;
  try {
    p = await deploy(withGroups(branchy, [["k0"], ["k1", "k2"], ["k3"]]), own.workers, {
      token: own.token,
      maxInFlight: 8,
      timeoutMs: 20000,
    });
    const n = 120;
    let done = 0;
    const results = Array.from({ length: n }, (_, i) =>
      p!.infer(feedsOf(i)).then(
        (out) => {
          done++;
          return out;
        },
        (err: Error) => err,
      ),
    );
    while (done < 5) await new Promise((r) => setTimeout(r, 1));
    process.kill(own.pids[1], "SIGKILL");
    const settled = await Promise.all(results);
    const errs = settled.filter((s) => s instanceof Error);
    assert.deepEqual(
      errs.map((e) => e.message),
      [],
    );
    await checkOutputs(settled as Tensors[]);
    const st = p.stats();
    assert.equal(st.completed, n);
    assert.equal(st.failed, 0);
    assert.equal(st.inFlight, 0);
    assert.ok(st.replayed > 0, "no request was in flight on the killed replica");
    assert.equal(p.events.length, 1);
    assert.equal(p.events[0].device, "k1");
    assert.deepEqual(p.events[0].stages, [1]);
    assert.equal(p.events[0].replayed, st.replayed);
    const [r1, r2] = st.stages[1].replicas;
    assert.equal(r1.alive, false);
    assert.equal(r1.outstanding, 0);
    assert.equal(st.workers.find((w) => w.name === "k1")?.alive, false);
    // After the loss everything runs on k2, and the upstream worker keeps serving.
    const r = await p.runMany({ count: 20, feeds: feedsOf }, { keepOutputs: true });
    assert.equal(r.completed, 20, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? []);
    assert.equal(p.stats().stages[1].replicas[0].dispatched, r1.dispatched);
    assert.equal(p.stats().stages[1].replicas[1].completed, r2.completed + 20);
    // The last replica of stage 1 goes: the pipeline fails naming the stage and the device.
    const inFlight = Array.from({ length: 8 }, (_, i) =>
      p!.infer(feedsOf(i)).then(
        () => undefined,
        (e: Error) => e,
      ),
    );
    process.kill(own.pids[2], "SIGKILL");
    for (const e of await Promise.all(inFlight))
      if (e)
        assert.match(
          e.message,
          /^worker k2 \(stage 1\) at 127\.0\.0\.1:\d+: connection lost .*no replica of stage 1 is left/,
        );
    await assert.rejects(p.infer(feedsOf(0)), {
      name: "RuntimeFault",
      message:
        /^worker k2 \(stage 1\) at 127\.0\.0\.1:\d+: connection lost .*; no replica of stage 1 is left$/,
    });
  } finally {
    await p?.close();
    await own.stop();
  }
});

test("a split naming a replica group needs a worker for each of its devices", () => {
  const src = withGroups(branchy, [["a"], ["b", "zz"], ["d"]]);
  return assert.rejects(deploy(src, cluster.workers, { token: cluster.token }), {
    name: "ArgumentError",
    message:
      "workers: stage 1 is replicated on b, zz; give a worker for each of its devices by name (missing: zz)",
  });
});
