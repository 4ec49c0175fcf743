/**
 * Replica-group planner benchmark: EfficientNet-B0 on the local, hetero-pair and edge-mix clusters, throughput.
 * For each: the pipeline planner's time and plan, the replica search's time (seeded with that pipeline, and
 * unseeded), the plan chosen, and its predicted throughput against the best single device and the best
 * pipeline, side by side. Emulated devices (cpus:) are priced from this machine's profile, as `cleave plan`
 * does. Prints one JSON object. Run: node dist/bench/planner-replicas.js
 */
import { withLocalProfiles } from "../src/cli/local-profiles.js";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { resolveConstraints } from "../src/partition/constraints.js";
import { evaluate } from "../src/partition/evaluate.js";
import { asReplicaCandidate } from "../src/partition/evaluate-replicas.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { planExact } from "../src/partition/planner-exact.js";
import { planReplicas } from "../src/partition/planner-replicas.js";
import { buildProblem } from "../src/partition/problem.js";
import { buildZooModel } from "../src/zoo/index.js";

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const silent = { out: () => {}, err: () => {}, isTTY: false };

const model = await analyzeModel(buildZooModel("efficientnet_b0"), { source: "zoo:efficientnet_b0" });
const order = choosePartitionOrder(model);
const results = [];
for (const name of ["local", "hetero-pair", "edge-mix"]) {
  const cluster = loadClusterSpec(name);
  const cost = costModelFor(model, cluster, {
    profiles: await withLocalProfiles(model, cluster, {}, silent),
  });
  const p = buildProblem(model, order, cluster, cost);
  const rc = resolveConstraints(p, {});
  const pipe = planExact(p, { objective: "throughput", constraints: rc });
  const seeded = planReplicas(p, {
    objective: "throughput",
    constraints: rc,
    ...(pipe.candidate ? { incumbent: asReplicaCandidate(pipe.candidate) } : {}),
  });
  const unseeded = planReplicas(p, { objective: "throughput", constraints: rc });
  const single = Math.max(
    ...p.devices.map((_, d) => evaluate(p, { stages: [{ device: d, start: 0, end: p.n }] }, rc).throughput),
  );
  const pipeThroughput = pipe.candidate ? evaluate(p, pipe.candidate, rc).throughput : 0;
  const chosen = seeded.evaluation;
  results.push({
    cluster: name,
    devices: p.devices.length,
    positions: p.n,
    pipelineMs: round(pipe.stats.ms, 1),
    replicaSeededMs: round(seeded.stats.ms, 1),
    replicaUnseededMs: round(unseeded.stats.ms, 1),
    replicaExact: seeded.exact && unseeded.exact,
    unseededSameValue: Math.abs(unseeded.value - seeded.value) <= 1e-9 * seeded.value,
    labels: { seeded: seeded.stats.labels, unseeded: unseeded.stats.labels },
    plan: seeded.candidate?.stages.map((s) => ({
      devices: s.devices.map((d) => p.devices[d].name),
      nodes: s.end - s.start,
    })),
    throughput: {
      plan: round(chosen?.throughput ?? 0, 2),
      pipeline: round(pipeThroughput, 2),
      single: round(single, 2),
    },
    ratio: {
      planOverSingle: round((chosen?.throughput ?? 0) / single),
      pipelineOverSingle: round(pipeThroughput / single),
      planOverPipeline: round((chosen?.throughput ?? 0) / pipeThroughput),
    },
  });
}
console.log(JSON.stringify({ model: "efficientnet_b0", objective: "throughput", results }, null, 2));
