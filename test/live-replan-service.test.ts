import assert from "node:assert/strict";
import { test } from "node:test";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { estimateSplit } from "../src/cost/estimate.js";
import { liveReplanner } from "../src/harness/live-replan.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import type { Deployable } from "../src/runtime/control/service.js";
import { buildZooModel } from "../src/zoo/index.js";

// A device under a CPU quota can run each stage in about its usual time and wait between runs: its compute time
// hardly moves while the pipeline's period grows 4x. The replanner must see the device (its service time), not
// a slow link.
test("live re-planning: a stage whose service time grew 4x while its compute time did not is a slow device, not a slow link", async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "zoo:squeezenet1_1" });
  const local = loadClusterSpec("local");
  const cluster: Cluster = { ...local, links: local.links.map((l) => ({ ...l, bandwidth: 125e6 })) };
  const cost = costModelFor(model, cluster, { profiles: {} });
  const order = choosePartitionOrder(model);
  const assignment = assignByBoundaries(model, order, balancedCuts(model, order, 2));
  const devices = [["core0"], ["core1"]];
  const predicted = estimateSplit(model, cluster, cost, assignment.stageOf, ["core0", "core1"]);
  const stageMs = new Map(predicted.stages.map((s) => [s.index, s.latency * 1000]));
  const snap = (service: number, throughput: number) => ({
    stageMs,
    stageServiceMs: new Map(
      predicted.stages.map((s) => [s.index, s.latency * 1000 * (s.index === 0 ? service : 1)]),
    ),
    stageDevice: new Map(predicted.stages.map((s) => [s.index, s.device])),
    throughput,
    windows: 5,
  });
  const live = liveReplanner({
    model,
    cluster,
    profiles: {},
    running: { assignment, devices },
    exportSplit: async () => ({ dir: "unused" }) as unknown as Deployable,
  });
  const steady = await live.evaluate(snap(1, predicted.throughput));
  assert.ok(steady);
  assert.ok(
    steady.best <= steady.running * 1.15,
    `${steady.why}: balanced and as predicted, nothing much to gain`,
  );
  const slowest = Math.max(...predicted.stages.map((s) => s.latency));
  const throttled = await live.evaluate(snap(4, 1 / (4 * slowest)));
  assert.ok(throttled);
  const sc = live.lastScaling()!;
  assert.ok(Math.abs(sc.device.core0 - 4) < 1e-6, `core0 measured ${sc.device.core0}x`);
  assert.equal(sc.link, 1, "the longer period is explained by core0: the links stay as declared");
  assert.match(throttled.why, /core0 4\.00x/);
  assert.doesNotMatch(throttled.why, /links/);
  assert.notEqual(throttled.bestKey, throttled.runningKey);
  assert.ok(throttled.best > 1.3 * throttled.running, `${throttled.best} > 1.3 x ${throttled.running}`);
});

test("live re-planning after a loss prices the deployment that runs now, over the devices left", async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "zoo:squeezenet1_1" });
  const cluster = loadClusterSpec("local");
  const cost = costModelFor(model, cluster, { profiles: {} });
  const order = choosePartitionOrder(model);
  const two = assignByBoundaries(model, order, balancedCuts(model, order, 2));
  const exported: Array<{ devices: string[][] }> = [];
  const live = liveReplanner({
    model,
    cluster,
    profiles: {},
    running: { assignment: two, devices: [["core0"], ["core1"]] },
    exportSplit: async (s) => {
      exported.push(s);
      return { dir: "unused" } as unknown as Deployable;
    },
  });
  // core1 was lost and both stages were reassigned to core0; the estimates are that deployment's.
  const moved = estimateSplit(model, cluster, cost, two.stageOf, ["core0", "core0"]);
  const est = {
    stageMs: new Map(moved.stages.map((s) => [s.index, s.latency * 1000])),
    stageDevice: new Map(moved.stages.map((s) => [s.index, s.device])),
    throughput: moved.throughput,
    windows: 5,
  };
  const deployed = { manifest: undefined, dir: "unused" } as unknown as Deployable;
  assert.equal(
    await live.evaluate(est, { deployed, lost: ["core1"] }),
    undefined,
    "a split on a lost device is not priced",
  );
  const c = await live.evaluate(est, {
    deployed: { ...deployed, split: { assignment: two, devices: ["core0", "core0"] } },
    lost: ["core1"],
  });
  assert.ok(c, "the reassigned split is priced");
  assert.match(c.runningKey ?? "", /core0/);
  assert.doesNotMatch(`${c.runningKey} ${c.bestKey}`, /core1/, "no proposal uses the lost device");
  await c.build();
  assert.ok(exported[0].devices.flat().every((d) => d === "core0"));
});
