/**
 * Replica benchmark: EfficientNet-B0 on the local cluster's two pinned one-core devices (core0, core1), side
 * by side in one run: each device alone running the whole model, the whole model replicated on both (every
 * request runs on one of them, chosen by the coordinator), and the two-stage pipeline (MAC-balanced cut, one
 * stage per device). Every configuration stays deployed on its own workers and the rounds alternate, so a
 * drift of the host's speed hits all alike. Prints JSON: requests/s per configuration and round, each
 * replica's share, and the ratios to the best single device (the physical limit of two cores is 2.0).
 *
 * Usage: node dist/bench/replicas.js [--requests N] [--rounds R] [--model NAME]
 */
import { parseArgs } from "node:util";
import { localClusterPath } from "../src/cli/load.js";
import { loadCluster } from "../src/cluster/load.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import {
  type DeployedSplit,
  deploySplit,
  type SplitMeasurement,
  type StageDevices,
  wholeModel,
} from "../src/runtime/coordinator/run-split.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "150" },
    rounds: { type: "string", default: "4" },
    model: { type: "string", default: "efficientnet_b0" },
  },
});
const requests = Number(values.requests);
const rounds = Number(values.rounds);

const model = await analyzeModel(buildZooModel(values.model), { source: values.model });
const cluster = loadCluster(localClusterPath());
const [d0, d1] = cluster.devices.map((d) => d.name);
const whole = wholeModel(model);
const order = choosePartitionOrder(model);
const two = assignByBoundaries(model, order, balancedCuts(model, order, 2));

const configs: Array<{ name: string; assignment: typeof whole; devices: StageDevices[]; inFlight: number }> =
  [
    { name: `${d0} alone`, assignment: whole, devices: [d0], inFlight: 2 },
    { name: `${d1} alone`, assignment: whole, devices: [d1], inFlight: 2 },
    { name: "whole-model replicas", assignment: whole, devices: [[d0, d1]], inFlight: 4 },
    { name: "two-stage pipeline", assignment: two, devices: [d0, d1], inFlight: 4 },
  ];

const deployed: DeployedSplit[] = [];
try {
  for (const c of configs)
    deployed.push(await deploySplit(model, c.assignment, c.devices, cluster, { inFlight: c.inFlight }));
  const rows: SplitMeasurement[][] = configs.map(() => []);
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < configs.length; i++) rows[i].push(await deployed[i].measure(requests));
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const results = configs.map((c, i) => {
    const ms = rows[i];
    const done = ms.reduce((s, m) => s + m.report.completed, 0);
    const wall = ms.reduce((s, m) => s + m.report.wallMs, 0);
    const replicas = ms[0].replicas.map((rep, k) => {
      const completed = ms.reduce((s, m) => s + m.replicas[k].completed, 0);
      // The workers' own onnxruntime time (per request of the round, by device) summed over the rounds.
      const busyMs = ms.reduce((s, m) => s + (m.stageBusyMs[rep.device] ?? 0) * m.report.completed, 0);
      return {
        stage: rep.stage,
        device: rep.device,
        completed,
        throughput: r3((completed * 1000) / wall),
        onnxruntimeMsPerRun: r3(busyMs / Math.max(1, completed)),
        // Share of the wall time the device spent in onnxruntime: near 1, it was never left waiting.
        busyShare: r3(busyMs / wall),
      };
    });
    return {
      config: c.name,
      devices: c.devices,
      inFlight: c.inFlight,
      throughput: r3((done * 1000) / wall),
      roundThroughputs: ms.map((m) => r3(m.report.throughput)),
      latencyP50Ms: r3(
        ms.map((m) => m.report.latencyMs.p50).sort((a, b) => a - b)[Math.floor(ms.length / 2)],
      ),
      failed: ms.reduce((s, m) => s + m.report.failed, 0),
      maxRelativeDiff: deployed[i].maxRelativeDiff,
      replicas,
    };
  });
  const best = Math.max(results[0].throughput, results[1].throughput);
  // Per round too: the ratio of each round's replicas to that round's best single device.
  const perRound = (k: number) =>
    rows[k].map((m, r) =>
      r3(m.report.throughput / Math.max(rows[0][r].report.throughput, rows[1][r].report.throughput)),
    );
  console.log(
    JSON.stringify(
      {
        bench: "replicas",
        model: values.model,
        cluster: cluster.name,
        requestsPerRound: requests,
        rounds,
        results,
        ratios: {
          replicasOverBestSingle: r3(results[2].throughput / best),
          pipelineOverBestSingle: r3(results[3].throughput / best),
          replicasOverPipeline: r3(results[2].throughput / results[3].throughput),
          replicasOverBestSingleByRound: perRound(2),
          pipelineOverBestSingleByRound: perRound(3),
        },
      },
      null,
      2,
    ),
  );
} finally {
  for (const d of deployed) await d.close();
}
