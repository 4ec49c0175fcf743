import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../src/export/manifest.js";
import { readManifest } from "../src/export/manifest-io.js";
import { splitModel } from "../src/export/split.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { decodeModel } from "../src/onnx/model-io.js";
import { createSession, type ort, randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { type LocalCluster, startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import type { Pipeline, Tensors } from "../src/runtime/coordinator/pipeline.js";
import type { Connection } from "../src/runtime/transport/transport.js";
import { Worker } from "../src/runtime/worker/worker.js";
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

/** Nice value of thread `tid` of process `pid`. */
function niceOf(pid: number, tid: number | string): number {
  // Fields after the command name (which may hold spaces): nice is the 19th field of the line.
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

/** Threads of process `pid` whose nice value is 19 (a background stage's, LoadMsg.background). */
function niceThreads(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).filter((t) => niceOf(pid, t) === 19).length;
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

test("a worker runs a stage and a replica of each later one; a tensor feeds only the chosen replicas", async () => {
  // Worker a runs all three stages (replica 0 of stages 1 and 2); `x` reaches it for stage 0 on every
  // request, and must not start stage 2 there when the request's stage 2 runs on c.
  const p = await deploy(withGroups(branchy, [["a"], ["a", "b"], ["a", "c"]]), cluster.workers, {
    token: cluster.token,
    maxInFlight: 6,
  });
  try {
    const n = 40;
    const r = await p.runMany({ count: n, feeds: feedsOf }, { keepOutputs: true });
    assert.equal(r.completed, n, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? []);
    for (const stage of [1, 2]) {
      const runs = await runsOf(p, stage);
      const [x, y] = Object.values(runs);
      assert.ok(x > 0 && y > 0, `stage ${stage}: ${JSON.stringify(runs)}`);
      assert.equal(x + y, n, `stage ${stage}: ${JSON.stringify(runs)}`);
    }
    // Nothing is left waiting for inputs that will never come.
    for (const w of await p.workerStats())
      for (const st of w.stages) assert.equal(st.pending, 0, `worker ${w.worker} stage ${st.stage}`);
    // a's replicas run below its stage 0 (which every request passes through) in priority: each on a thread
    // of its own at nice 19 (Linux schedules threads one by one); b's and c's replicas, alone on their
    // workers, and a's stage 0 keep the normal priority.
    const pid = (name: string) => cluster.pids[cluster.workers.findIndex((w) => w.name === name)];
    // At least the two replicas' threads (threads they start, onnxruntime's included, inherit it).
    assert.ok(niceThreads(pid("a")) >= 2, `a: ${niceThreads(pid("a"))} lowered threads`);
    assert.equal(niceOf(pid("a"), pid("a")), 0, "a's I/O thread keeps its priority");
    assert.equal(niceThreads(pid("b")), 0);
    assert.equal(niceThreads(pid("c")), 0);
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

test("writeSplit records a replica group and writes its stage once; deploy runs it by device names", async () => {
  const model = await analyzeModel(decodeModel(branchy.whole), { source: "branchy" });
  const tmp = mkdtempSync(join(tmpdir(), "cleave-replicas-"));
  const out = join(tmp, "split");
  const { manifest } = splitModel(model, { stages: 2 }, out, {
    modelPath: "branchy.onnx",
    devices: ["a", ["c", "b"]],
  });
  assert.equal(manifest.stages[0].device, "a");
  assert.equal(manifest.stages[0].devices, undefined);
  assert.equal(manifest.stages[1].device, "c");
  assert.deepEqual(manifest.stages[1].devices, ["c", "b"]);
  assert.deepEqual(readdirSync(out).sort(), ["manifest.json", "stage-0.onnx", "stage-1.onnx"]);
  assert.deepEqual(readManifest(out).manifest.stages[1].devices, ["c", "b"]);
  const p = await deploy(out, cluster.workers, { token: cluster.token });
  try {
    const r = await p.runMany({ count: 20, feeds: feedsOf }, { keepOutputs: true });
    assert.equal(r.completed, 20, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? []);
    assert.deepEqual(
      p.stats().stages[1].replicas.map((x) => x.device),
      ["c", "b"],
    );
    assert.equal(p.stats().workers.length, 3);
  } finally {
    await p.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("a replica another worker cannot reach is dropped from its group and its requests run on the others", async () => {
  // The upstream worker runs in this process, so its connection to replica c can be cut while c's own
  // connection to the coordinator stays up (a one-sided partition).
  const up = new Worker({ name: "u", token: cluster.token });
  const addr = await up.start();
  const workers = [{ name: "u", endpoint: `${addr.host}:${addr.port}` }, ...cluster.workers];
  const p = await deploy(withGroups(branchy, [["u"], ["b", "c"], ["d"]]), workers, { token: cluster.token });
  try {
    const c = cluster.workers.find((w) => w.name === "c")!;
    // Reaching into the worker: nothing else can sever one peer link of a running deployment (its only one,
    // held for this coordinator's connection).
    const held = (up as unknown as { deployments: Map<unknown, { peers: Map<string, Promise<Connection>> }> })
      .deployments;
    assert.equal(held.size, 1);
    const { peers } = [...held.values()][0];
    (await peers.get(c.endpoint)!).close();
    const n = 30;
    const r = await p.runMany({ count: n, feeds: feedsOf }, { keepOutputs: true });
    assert.equal(r.completed, n, JSON.stringify(r.errors));
    await checkOutputs(r.outputs ?? []);
    assert.equal(p.events.length, 1);
    assert.equal(p.events[0].cause, "unreachable");
    assert.equal(p.events[0].device, "c");
    assert.match(p.events[0].message, /^worker u: cannot send 'b' to worker c at /);
    const st = p.stats();
    assert.equal(st.completed, n);
    assert.equal(st.stages[1].replicas[1].alive, false);
    assert.equal(st.stages[1].replicas[1].outstanding, 0);
  } finally {
    await p.close();
    await up.stop();
  }
});

test("a manifest's replica group is checked when read", () => {
  const cases: Array<[unknown, string]> = [
    [["b", "b"], "device 'b' is listed twice"],
    [[], "expected a list of device names"],
    [["c", "b"], "the first device must be 'device' (b)"],
  ];
  for (const [devices, why] of cases) {
    const m = { ...branchy.manifest, stages: branchy.manifest.stages.map((s) => ({ ...s })) };
    Object.assign(m.stages[1], { device: "b", devices });
    const file = join(branchy.dir, "bad-manifest.json");
    writeFileSync(file, JSON.stringify(m));
    assert.throws(() => readManifest(file), {
      name: "ArgumentError",
      message: `${file}: stages[1].devices: ${why}`,
    });
  }
});
