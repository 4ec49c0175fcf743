import assert from "node:assert/strict";
import { test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import { localClusterPath } from "../src/cli/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { hasTaskset } from "../src/runtime/local-cluster.js";
import { benchCluster } from "../src/runtime/bench.js";
import { buildZooModel } from "../src/zoo/index.js";

test("bench: configurations take turns in rounds, stages run alone, CPU per request is counted", {
  skip: hasTaskset() ? false : "taskset is missing",
}, async () => {
  const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
  const cluster = loadCluster(localClusterPath());
  const r = await benchCluster(model, cluster, costModelFor(model, cluster), { requests: 12, rounds: 3 });
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
    assert.deepEqual(Object.keys(row.stageCpuMs).sort(), [...new Set(row.devices)].sort());
    for (const [d, ms] of Object.entries(row.stageCpuMs)) assert.ok(ms > 0, `${row.name}: ${d} used no CPU`);
    assert.ok(row.coordinatorCpuMs > 0, `${row.name}: coordinator CPU`);
    assert.ok(row.pipelineEfficiency > 0 && Number.isFinite(row.pipelineEfficiency));
  }
  // The speed-up is the median of the rounds' paired ratios.
  assert.equal(r.roundSpeedups.length, 3);
  for (const [i, x] of r.roundSpeedups.entries())
    assert.equal(x, r.rows[0].roundThroughputs[i] / r.rows[1].roundThroughputs[i]);
  assert.equal(r.speedup, [...r.roundSpeedups].sort((a, b) => a - b)[1]);
  // Each stage of the plan ran alone on its device; efficiency is measured over the slowest of them.
  const alone = r.rows[0].standalone;
  assert.ok(alone);
  assert.deepEqual(
    alone.map((s) => s.device),
    r.plan.devices,
  );
  for (const s of alone) assert.ok(s.throughput > 0 && s.cpuMs > 0, `stage ${s.stage} alone`);
  const slowest = Math.min(...alone.map((s) => s.throughput));
  assert.ok(Math.abs(r.rows[0].pipelineEfficiency - r.rows[0].measured.throughput / slowest) < 1e-12);
  assert.equal(r.rows[1].standalone, undefined);
});
