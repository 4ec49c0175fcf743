import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { estimateSplit } from "../src/cost/estimate.js";
import { type LiveSplit, liveReplanner } from "../src/harness/live-replan.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { Calibrator, calibrationInputs, meetsBudget } from "../src/partition/calibrate.js";
import { parseFidelityBudget } from "../src/partition/encodings.js";
import { cutReaders, planWithFidelity } from "../src/partition/plan-fidelity.js";
import type { Deployable } from "../src/runtime/control/service.js";
import { buildZooModel } from "../src/zoo/index.js";

const clusters = join(import.meta.dirname, "..", "..", "examples", "clusters");
const times = {
  float16: { encode: 1e-9, decode: 1e-9 },
  int8: { encode: 1e-9, decode: 1e-9 },
  "int8-channel": { encode: 1e-9, decode: 1e-9 },
};

test("live re-planning under a budget: plentiful bandwidth keeps float32; when it falls the proposal is encoded and meets the budget on held-out inputs", async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "zoo:squeezenet1_1" });
  const declared = loadCluster(join(clusters, "camera-server.yaml"));
  // The link as declared at 10 GB/s: no encoding pays for itself there.
  const cluster: Cluster = { ...declared, links: declared.links.map((l) => ({ ...l, bandwidth: 10e9 })) };
  const cost = costModelFor(model, cluster, { profiles: {} });
  const budget = parseFidelityBudget("top1=0.99")!;
  const inputs = calibrationInputs(model, undefined, 4);
  const calibrator = new Calibrator(model, inputs);
  const t0 = performance.now();
  const first = await planWithFidelity(model, cluster, cost, {
    objective: "throughput",
    replicas: false,
    budget,
    calibrator,
    codecTimes: times,
  });
  const firstMs = performance.now() - t0;
  assert.equal(first.encodings.length, 0, "at 10 GB/s the initial plan is float32");
  const running: LiveSplit = { assignment: first.plan.assignment, devices: first.plan.devices };
  const exported: LiveSplit[] = [];
  const live = liveReplanner({
    model,
    cluster,
    profiles: {},
    running,
    fidelity: { budget, calibrator, codecTimes: times },
    exportSplit: async (s) => {
      exported.push(s);
      return { dir: "unused" } as unknown as Deployable;
    },
  });
  const predicted = estimateSplit(
    model,
    cluster,
    cost,
    running.assignment.stageOf,
    running.devices.map((g) => g[0]),
  );
  // Stages measured as predicted; the pipeline's period as predicted, then 4x longer (the link got slow).
  const snap = (throughput: number) => ({
    stageMs: new Map(predicted.stages.map((s) => [s.index, s.latency * 1000])),
    stageDevice: new Map(predicted.stages.map((s) => [s.index, s.device])),
    throughput,
    windows: 5,
  });
  const plenty = await live.evaluate(snap(predicted.throughput));
  assert.ok(plenty);
  assert.equal(plenty.bestKey, plenty.runningKey, `${plenty.why}: no switch while the link is fast`);
  assert.match(plenty.why, /encodings float32 -> float32/);
  const slow = await live.evaluate(snap(predicted.throughput / 4));
  assert.ok(slow);
  assert.ok(live.lastScaling()!.link > 10, "the slow period is put on the link");
  const slowMs = live.lastPlanMs()!;
  assert.notEqual(slow.bestKey, slow.runningKey);
  assert.ok(slow.best > slow.running, `${slow.best} > ${slow.running}`);
  assert.match(slow.why, /encodings float32 -> .*(int8|int4|float16)/);
  assert.equal(slow.encodings?.from, "float32");
  assert.match(slow.encodings?.to ?? "", /int8|int4|float16/);
  assert.ok(live.lastPlanMs()! >= 0);
  await slow.build();
  const next = exported[0];
  assert.ok(next.encodings && next.encodings.length > 0, "the exported split carries its encodings");
  // The budget holds on the held-out inputs, measured by a fresh calibrator (nothing cached).
  const fresh = new Calibrator(model, inputs);
  const readers = cutReaders(
    model,
    { ...first.plan, assignment: next.assignment, devices: next.devices },
    cluster.inputDevice,
  );
  const sent = new Map(next.encodings.map((e) => [e.tensor, readers.get(e.tensor)!]));
  const held = await fresh.fidelity(next.encodings, "held", sent);
  assert.ok(meetsBudget(held, budget), JSON.stringify(held));
  assert.equal(fresh.measured, 1);
  // The running split is now the encoded one, priced with its encodings: under the same slow estimates it is
  // the best plan itself (a float32 re-price of it would look worse), and the cached calibrator measures
  // nothing again.
  const measured = calibrator.measured;
  const encoded = new Map(next.encodings.map((e) => [e.tensor, e]));
  const now = estimateSplit(
    model,
    cluster,
    cost,
    next.assignment.stageOf,
    next.devices.map((g) => g[0]),
    encoded,
  );
  const shift = next.encoderStage ? 1 : 0;
  const again = await live.evaluate({
    stageMs: new Map(now.stages.map((s) => [s.index + shift, s.latency * 1000])),
    stageDevice: new Map(now.stages.map((s) => [s.index + shift, s.device])),
    throughput: slow.best,
    windows: 5,
  });
  assert.ok(again);
  assert.equal(again.bestKey, again.runningKey, again.why);
  assert.equal(calibrator.measured, measured, "re-planning reuses the cached fidelities");
  console.log(
    `planning under the budget: initial ${firstMs.toFixed(0)} ms; live re-plans ${slowMs.toFixed(0)} ms, ${live.lastPlanMs()!.toFixed(0)} ms (cached calibrator)`,
  );
});
