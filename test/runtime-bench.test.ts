import assert from "node:assert/strict";
import { test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import { localClusterPath } from "../src/cli/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { hasTaskset } from "../src/runtime/coordinator/local-cluster.js";
import { benchCluster } from "../src/harness/bench.js";
import { buildZooModel } from "../src/zoo/index.js";

test("bench: configurations take turns in rounds, stages run alone, CPU per request is counted", {
  skip: hasTaskset() ? false : "taskset is missing",
}, async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
  const cluster = loadCluster(localClusterPath());
  // Pipelines only: each stage also runs alone (a replicated plan is benched in the next test).
  const r = await benchCluster(model, cluster, costModelFor(model, cluster), {
    requests: 12,
    rounds: 3,
    replicas: false,
  });
  assert.equal(r.rounds, 3);
  assert.deepEqual(
    r.rows.map((row) => row.name),
    ["plan", "single"],
  );
  assert.equal(r.plan.devices.length, 2, "two equal devices split the model for throughput");
  for (const row of r.rows) {
    assert.equal(row.roundThroughputs.length, 3, `${row.name}: one throughput per round`);
    assert.equal(row.measured.failed, 0);
    // Pooled latencies: every request of every round.
    assert.equal(row.measured.latencyMs.count, 12, `${row.name}: latencies pooled over the rounds`);
    assert.ok(row.maxRelativeDiff < 1e-4, `${row.name}: outputs differ by ${row.maxRelativeDiff}`);
    assert.deepEqual(
      Object.keys(row.stageCpuMs).sort(),
      [...new Set(row.devices.flatMap((d) => d.split("+")))].sort(),
    );
    for (const [d, ms] of Object.entries(row.stageCpuMs)) assert.ok(ms > 0, `${row.name}: ${d} used no CPU`);
    assert.ok(row.coordinatorCpuMs > 0, `${row.name}: coordinator CPU`);
    assert.ok(row.pipelineEfficiency > 0 && Number.isFinite(row.pipelineEfficiency));
  }
  // The speed-up is the ratio of the two pooled throughputs of the table; the rounds' ratios are its spread.
  assert.equal(r.roundSpeedups.length, 3);
  for (const [i, x] of r.roundSpeedups.entries())
    assert.equal(x, r.rows[0].roundThroughputs[i] / r.rows[1].roundThroughputs[i]);
  assert.equal(r.speedup, r.rows[0].measured.throughput / r.rows[1].measured.throughput);
  assert.equal(r.speedupError, (r.predictedSpeedup - r.speedup) / r.speedup);
  // A configuration faster than the plan gets a finding, and only then.
  assert.equal(
    r.findings.length,
    r.rows.slice(1).filter((x) => x.measured.throughput > r.rows[0].measured.throughput).length,
  );
  for (const row of r.rows) {
    // Efficiency: the busiest device's share of the wall time in onnxruntime, never above 1.
    const busiest = Math.max(...Object.values(row.stageBusyMs));
    assert.ok(Math.abs(row.pipelineEfficiency - (row.measured.throughput * busiest) / 1000) < 1e-12);
    assert.ok(row.pipelineEfficiency <= 1.02, `${row.name}: efficiency ${row.pipelineEfficiency}`);
    // Requests sent alone: their latency is what the prediction describes; onnxruntime CPU within the worker's.
    assert.ok(row.alone.latencyMs.count >= 3, `${row.name}: requests sent alone in every round`);
    assert.ok(row.alone.latencyMs.p50 > 0 && row.alone.transferMs >= 0);
    assert.equal(
      row.latencyError,
      (row.predicted.latencyMs - row.alone.latencyMs.p50) / row.alone.latencyMs.p50,
    );
    for (const [d, ms] of Object.entries(row.stageOrtCpuMs)) {
      assert.ok(ms > 0, `${row.name}: ${d} used CPU in onnxruntime`);
      assert.ok(
        ms <= row.stageCpuMs[d] * 1.001,
        `${row.name}: ${d}'s onnxruntime CPU within its process CPU`,
      );
    }
  }
  // Each stage of the plan ran alone on its device.
  const alone = r.rows[0].standalone;
  assert.ok(alone);
  assert.deepEqual(
    alone.map((s) => s.device),
    r.plan.devices.map((g) => g.join("+")),
  );
  for (const s of alone) assert.ok(s.throughput > 0 && s.cpuMs > 0, `stage ${s.stage} alone`);
  assert.equal(r.rows[1].standalone, undefined);
});

test("bench of a replicated plan: measured beside the best pipeline, every replica served, outputs exact", {
  skip: hasTaskset() ? false : "taskset is missing",
}, async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
  const cluster = loadCluster(localClusterPath());
  const r = await benchCluster(model, cluster, costModelFor(model, cluster), {
    requests: 24,
    rounds: 2,
    baselines: true,
  });
  const replicated = r.plan.devices.findIndex((g) => g.length > 1);
  assert.ok(
    replicated >= 0,
    `two equal devices: the plan replicates a stage (${JSON.stringify(r.plan.devices)})`,
  );
  const names = r.rows.map((row) => row.name);
  assert.deepEqual(names.slice(0, 3), ["plan", "single", "pipeline"]);
  const plan = r.rows[0];
  assert.equal(plan.devices[replicated], r.plan.devices[replicated].join("+"));
  assert.equal(plan.measured.failed, 0);
  assert.ok(plan.maxRelativeDiff < 1e-4);
  const served = plan.replicas?.filter((x) => x.stage === replicated) ?? [];
  assert.deepEqual(served.map((x) => x.device).sort(), [...r.plan.devices[replicated]].sort());
  for (const x of served) assert.ok(x.completed > 0, `replica ${x.device} served no request`);
  // CPU is counted for every device of the group.
  for (const d of r.plan.devices[replicated])
    assert.ok((plan.stageCpuMs[d] ?? 0) > 0, `${d}: CPU per request`);
});

test("bench with objective latency: a tiled plan's requests alone run on a deployment of their own, stages inline", {
  skip: hasTaskset() ? false : "taskset is missing",
}, async () => {
  // Roofline-priced on the local pair (loopback links), UNet tiles: its tiles put several stages on each device.
  const model = await analyzeModel(buildZooModel("unet"), { source: "unet" });
  const cluster = loadCluster(localClusterPath());
  const r = await benchCluster(model, cluster, costModelFor(model, cluster), {
    objective: "latency",
    requests: 4,
    rounds: 2,
    standalone: false,
  });
  const tiles = r.rows.find((row) => row.name === "tiles");
  assert.ok(tiles, `the planner tiles UNet here (rows: ${r.rows.map((row) => row.name).join(", ")})`);
  assert.ok(tiles.devices.length > new Set(tiles.devices).size, "a device runs several tile stages");
  assert.equal(tiles.measured.failed, 0);
  assert.equal(tiles.alone.latencyMs.count, 4, "as many requests sent alone as pipelined, in both rounds");
  // The pipelined deployment runs them on threads; the one requests alone went to, inline.
  assert.equal(tiles.alone.onThreads, 0);
  assert.ok(tiles.maxRelativeDiff <= 1e-5, `max relative difference ${tiles.maxRelativeDiff}`);
  const single = r.rows.find((row) => row.name === "single")!;
  assert.equal(single.alone.onThreads, 0, "a worker's only stage runs inline");
});
