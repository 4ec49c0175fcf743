/**
 * Recovery benchmark: EfficientNet-B0 as a two-stage pipeline (MAC-balanced cut) on the local cluster's two
 * pinned one-core devices, core0 > core1. Each scenario deploys it afresh, measures a round, kills (SIGKILL) or
 * stops (SIGSTOP) one worker while requests stream, and measures a round on the deployment the control loop
 * made over the device left (after a 1 s warm-up, as a fresh deployment gets). In the same run the whole model is deployed fresh on each device alone: the
 * fresh plan for the cluster that remains, which the recovered throughput is compared with. Prints JSON:
 * detection time and time to the first answer after the fault (ms), requests replayed and lost (must be 0),
 * throughput before, after and fresh, and after / fresh.
 *
 * Usage: node dist/bench/recovery.js [--requests N] [--model NAME] [--faults kill:core1,kill:core0,stop:core1]
 */
import { parseArgs } from "node:util";
import { localClusterPath } from "../src/cli/load.js";
import { loadCluster } from "../src/cluster/load.js";
import { measureFaultRecovery } from "../src/harness/recovery.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { deploySplit, wholeModel } from "../src/runtime/coordinator/run-split.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "100" },
    model: { type: "string", default: "efficientnet_b0" },
    faults: { type: "string", default: "kill:core1,kill:core0,stop:core1" },
  },
});
const requests = Number(values.requests);
const model = await analyzeModel(buildZooModel(values.model), { source: values.model });
const cluster = loadCluster(localClusterPath());
const [d0, d1] = cluster.devices.map((d) => d.name);
const order = choosePartitionOrder(model);
const two = assignByBoundaries(model, order, balancedCuts(model, order, 2));
const feeds = inputFeeds(model);
const r1 = (x: number) => Math.round(x * 10) / 10;

const fresh: Record<string, number> = {};
for (const d of [d0, d1]) {
  const s = await deploySplit(model, wholeModel(model), [d], cluster, { inFlight: 2, feeds });
  try {
    fresh[d] = (await s.measure(requests)).report.throughput;
  } finally {
    await s.close();
  }
}

const scenarios = [];
for (const f of values.faults.split(",")) {
  const [fault, victim] = f.split(":") as ["kill" | "stop", string];
  const split = await deploySplit(model, two, [d0, d1], cluster, { inFlight: 4, feeds });
  try {
    const r = await measureFaultRecovery(split, { victim, fault, requests, feeds });
    const survivor = victim === d0 ? d1 : d0;
    scenarios.push({
      fault,
      victim,
      detectedMs: r1(r.recovery?.detectedMs ?? Number.NaN),
      restoredMs: r1(r.recovery?.restoredMs ?? Number.NaN),
      firstAnswerAfterFaultMs: r1(r.firstAnswerAfterFaultMs),
      replayed: r.replayed,
      lost: r.lost,
      failed: r.failed,
      devicesAfter: r.devicesAfter,
      throughputBefore: r1(r.before.report.throughput),
      throughputAfter: r1(r.after.report.throughput),
      freshOnSurvivor: r1(fresh[survivor]),
      afterOverFresh: Math.round((r.after.report.throughput / fresh[survivor]) * 1000) / 1000,
    });
  } finally {
    await split.close();
  }
}
process.stdout.write(`${JSON.stringify({ model: values.model, requests, fresh, scenarios }, null, 2)}\n`);
