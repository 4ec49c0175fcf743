import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cluster, Device } from "../src/cluster/types.js";
import { buildStages } from "../src/export/stage.js";
import { remainingCluster } from "../src/cluster/remaining.js";
import { lossReplanner, planOverDevices } from "../src/harness/loss-replan.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { buildZooModel } from "../src/zoo/index.js";
import { createSession } from "../src/onnx/ort.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import {
  type LossPlanChoice,
  type PlanAfterLoss,
  type PlannedSplit,
  planThenReassign,
} from "../src/runtime/coordinator/loss-plan.js";
import type { Tensors } from "../src/runtime/coordinator/pipeline.js";
import { deploySplit } from "../src/runtime/coordinator/run-split.js";
import { reassignStages } from "../src/runtime/control/reassign.js";
import { alive, assertAllCorrect, chaosModel, streamWithFault } from "./helpers/chaos.js";

/**
 * Re-planning with the planner after a loss, with real worker processes: squeezenet as three MAC-balanced
 * stages on three equal devices; kill -9 of the middle one. The reassignment would run the three stages on
 * the two left (one of them with two thirds of the work); the planner's split over the two is deployed.
 */

const COUNT = 80;

function device(name: string): Device {
  return {
    name,
    kind: "cpu",
    macsPerSecond: { float32: 2e10 },
    memoryBandwidth: 1e10,
    memory: 4e9,
    idlePower: 1,
    activePower: 2,
  };
}

const cluster: Cluster = {
  name: "three",
  devices: [device("a"), device("b"), device("c")],
  links: [{ devices: ["a", "b", "c"], kind: "ethernet", bandwidth: 125e6, latency: 1e-4, energyPerBit: 0 }],
  inputDevice: "a",
  outputDevice: "c",
};

test("kill -9 of a worker: the planner's split for the devices left is deployed, every request answered once and exactly", async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
  const order = choosePartitionOrder(model);
  const three = assignByBoundaries(model, order, balancedCuts(model, order, 3));
  const feeds = (i: number): Tensors => inputFeeds(model, 100 + i);
  const whole = await createSession(model.graph.model);
  const want: Tensors[] = [];
  try {
    for (let i = 0; i < COUNT; i++) want.push((await whole.run(feeds(i))) as Tensors);
  } finally {
    await whole.release();
  }
  const workers = await startLocalWorkers([{ name: "a" }, { name: "b" }, { name: "c" }]);
  const pids = [...workers.pids];
  const choices: LossPlanChoice[] = [];
  try {
    const split = await deploySplit(model, three, ["a", "b", "c"], cluster, {
      workers: workers.workers,
      token: workers.token,
      inFlight: 6,
      warmup: 4,
      warmupMs: 0,
      heartbeatMs: 500,
      planAfterLoss: {
        plan: lossReplanner({ model, cluster, profiles: {} }),
        // The planner runs on this shared machine beside three workers: give it time.
        budgetMs: 20000,
        onChoice: (c) => choices.push(c),
      },
    });
    const c = split.controller;
    const first = c.deployed.manifest;
    try {
      const { outcomes, answers } = await streamWithFault(
        c,
        COUNT,
        20,
        () => {
          process.kill(pids[1], "SIGKILL");
        },
        feeds,
      );
      assertAllCorrect(outcomes, answers, want);
      assert.equal(c.recoveries.length, 1, JSON.stringify(c.recoveries));
      assert.equal(c.recoveries[0].device, "b");
      assert.equal(c.stats().requestsFailed, 0);
      assert.deepEqual(
        choices.map((x) => [x.reason, x.device, x.used]),
        [["loss", "b", "planned"]],
        JSON.stringify(choices),
      );
      // What was deployed is the planner's split for {a, c}, stage by stage.
      const { plan, fallbackThroughput } = planOverDevices(model, cluster, {}, ["a", "c"], undefined, {
        assignment: three,
        devices: reassignStages(first, ["a", "c"]).stages.map((s) => s.device!),
      });
      const wantStages = buildStages(model, plan.assignment);
      const got = c.deployed.manifest.stages;
      assert.deepEqual(
        got.map((s) => [s.device, s.outputs]),
        wantStages.map((s, i) => [[plan.devices[i]].flat()[0], s.outputs]),
      );
      assert.ok(got.every((s) => s.device !== "b"));
      assert.ok(
        fallbackThroughput !== undefined && plan.throughput > fallbackThroughput,
        `plan ${plan.throughput}/s against the reassignment's ${fallbackThroughput}/s`,
      );
      assert.notDeepEqual(
        got.map((s) => s.sha256),
        first.stages.map((s) => s.sha256),
      );
    } finally {
      await split.close();
    }
  } finally {
    await workers.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `worker process ${pid} is still running`);
});

test("the reassignment is deployed when the planner fails, overruns its budget or finds nothing better", async () => {
  const { fixture, manifest } = chaosModel();
  const assignment = { stageOf: new Int32Array(0), count: manifest.stages.length };
  const exported: unknown[] = [];
  const choices: LossPlanChoice[] = [];
  const hook = (plan: PlanAfterLoss, budgetMs = 1000) =>
    planThenReassign(
      plan,
      { manifest, dir: fixture.dir, assignment },
      async (split) => {
        exported.push(split);
        return { manifest, dir: fixture.dir };
      },
      { budgetMs, onChoice: (c) => choices.push(c) },
    );
  const planners: Array<[PlanAfterLoss, number, RegExp]> = [
    [
      async () => {
        throw new Error("nothing fits");
      },
      1000,
      /nothing fits/,
    ],
    [
      () => new Promise((r) => setTimeout(() => r({ assignment, devices: ["w0", "w2"] }), 500)),
      50,
      /longer than 50 ms/,
    ],
    [async () => undefined, 1000, /not better/],
  ];
  for (const [plan, budget, why] of planners) {
    const d = await hook(plan, budget)(["w0", "w2"], { reason: "loss", device: "w1" });
    assert.deepEqual(d.manifest, reassignStages(manifest, ["w0", "w2"]));
    assert.equal(d.dir, fixture.dir);
    assert.equal(choices.at(-1)?.used, "reassigned");
    assert.match(choices.at(-1)!.why, why);
  }
  assert.equal(exported.length, 0);
  // The fallback the planner is shown is the reassignment itself.
  let shown: PlannedSplit | undefined;
  await hook(async (_alive, why) => {
    shown = why.fallback;
    return { assignment, devices: ["w0", "w2", "w2"] };
  })(["w0", "w2"], { reason: "loss", device: "w1" });
  assert.deepEqual(
    shown?.devices,
    reassignStages(manifest, ["w0", "w2"]).stages.map((s) => [s.device]),
  );
  assert.equal(choices.at(-1)?.used, "planned");
  assert.equal(exported.length, 1);
});

test("the loss re-planner keeps the reassignment when its plan is no better, and plans over the devices left", async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
  const order = choosePartitionOrder(model);
  const three = assignByBoundaries(model, order, balancedCuts(model, order, 3));
  const plan = lossReplanner({ model, cluster, profiles: {} });
  const fallback = { assignment: three, devices: ["a", "c", "c"] };
  const better = await plan(["a", "c"], { reason: "loss", device: "b", fallback });
  assert.ok(better !== undefined);
  assert.ok(better.devices.flat().every((d) => d === "a" || d === "c"));
  // The planner's own split as the fallback: nothing is better by the margin.
  assert.equal(await plan(["a", "c"], { reason: "loss", device: "b", fallback: better }), undefined);
  // One device left, the three stages reassigned to it: priced about equal to the whole model there, yet the
  // plan merges them (one stage boundary fewer on the device), so it is taken.
  const merged = await plan(["a"], {
    reason: "loss",
    device: "b",
    fallback: { assignment: three, devices: ["a", "a", "a"] },
  });
  assert.ok(merged !== undefined, "the merged plan is taken");
  assert.equal(merged.assignment.count, 1);
  assert.ok(
    merged.throughput! <
      1.05 *
        planOverDevices(model, cluster, {}, ["a"], undefined, {
          assignment: three,
          devices: ["a", "a", "a"],
        }).fallbackThroughput!,
    "within the margin: taken for merging, not for its price",
  );
  assert.throws(() => remainingCluster(cluster, []), /no device of cluster three is left/);
  const rc = remainingCluster(cluster, ["b", "c"]);
  assert.equal(rc.inputDevice, "b");
  assert.deepEqual(rc.links[0].devices, ["b", "c"]);
});
