/**
 * Resilience on the local cluster (two workers pinned to one core each), in one run: EfficientNet-B0 (or
 * --model NAME) split in two stages; a round measured healthy, then a round during which the second stage's
 * worker is killed with SIGKILL (the control loop detects it, re-plans over the device left, replays the
 * unfinished requests), then a round on what remains; and, for comparison, a fresh deployment of the whole
 * model on the device left, measured the same way in the same run. Prints JSON: detection time and time to the
 * first completed request after the kill (from the fault), requests replayed and lost (failed: must be 0),
 * throughput before, after, and of the fresh plan (goal: after within 15% of fresh), and what the re-plan after
 * the loss chose (`lossPlans`: planned, or the running stages reassigned, and why).
 *
 * `--bandwidth` runs the bandwidth part instead (root, the emulated testbed, inside
 * `flock /tmp/cleave-testbed.lock`; see resilience-bandwidth.ts): a link cut from 1 Gbit/s to 2 Mbit/s mid-run,
 * with live re-partitioning and on the old plan in the same run.
 *
 * Usage: node dist/bench/resilience.js [--model efficientnet_b0] [--requests 300] [--bandwidth]
 */
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import { bandwidthCut } from "./resilience-bandwidth.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { saveModel } from "../src/onnx/model-io.js";
import { resolveSplit } from "../src/export/split.js";
import { deploySplit, wholeModel } from "../src/runtime/coordinator/run-split.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { buildZooModel } from "../src/zoo/index.js";
import { lossReplanner } from "../src/harness/loss-replan.js";
import type { LossPlanChoice } from "../src/runtime/coordinator/loss-plan.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
if (args.includes("--bandwidth")) {
  process.stdout.write(`${JSON.stringify(await bandwidthCut(), null, 2)}\n`);
  process.exit(0);
}
const flag = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const name = flag("model", "efficientnet_b0");
const requests = Number(flag("requests", "300"));

const choices: LossPlanChoice[] = [];
const dir = mkdtempSync(join(tmpdir(), "cleave-resilience-"));
try {
  const path = join(dir, `${name}.onnx`);
  saveModel(buildZooModel(name), path);
  const model = await analyzeModel(path);
  const cluster = loadClusterSpec("local");
  const [a, b] = cluster.devices;
  const local = await startLocalWorkers([
    { name: a.name, cpus: a.cpus, threads: 1 },
    { name: b.name, cpus: b.cpus, threads: 1 },
  ]);
  try {
    const split = await deploySplit(model, resolveSplit(model, { stages: 2 }), [a.name, b.name], cluster, {
      workers: local.workers,
      token: local.token,
      heartbeatMs: 1000,
      requests,
      // As `cleave run` does: after a loss the planner plans over the devices left (here on nominal rates; one
      // device left gives the whole model on it), the running stages moved by reassignment when it cannot.
      planAfterLoss: {
        plan: lossReplanner({ model, cluster, profiles: {} }),
        onChoice: (c) => choices.push(c),
      },
    });
    let during: Awaited<ReturnType<typeof split.measure>>;
    let killedAt = 0;
    let before: Awaited<ReturnType<typeof split.measure>>;
    let after: Awaited<ReturnType<typeof split.measure>>;
    try {
      before = await split.measure(requests);
      // Killed a second into the round, with requests in flight.
      const timer = setTimeout(() => {
        killedAt = performance.now();
        process.kill(local.pids[1], "SIGKILL");
      }, 1000);
      during = await split.measure(requests);
      clearTimeout(timer);
      after = await split.measure(requests);
    } finally {
      await split.close();
    }
    // A fresh plan for the cluster left: the whole model on the device left, on its own worker.
    const fresh = await startLocalWorkers([{ name: a.name, cpus: a.cpus, threads: 1 }]);
    let freshTp = 0;
    try {
      const f = await deploySplit(model, wholeModel(model), [a.name], cluster, {
        workers: fresh.workers,
        token: fresh.token,
        requests,
      });
      try {
        freshTp = (await f.measure(requests)).report.throughput;
      } finally {
        await f.close();
      }
    } finally {
      await fresh.stop();
    }
    const r = during.recoveries[0];
    const out = {
      model: name,
      requestsPerRound: requests,
      killed: b.name,
      killedAtKnown: killedAt > 0,
      detectionMs: r?.detectedMs,
      firstCompletedAfterKillMs: r?.restoredMs,
      replayed: r?.replayed,
      lost: during.report.failed + after.report.failed,
      completedDuringKill: during.report.completed,
      throughputBefore: before.report.throughput,
      throughputAfter: after.report.throughput,
      throughputFreshPlan: freshTp,
      afterOverFresh: freshTp > 0 ? after.report.throughput / freshTp : undefined,
      recoveries: during.recoveries,
      lossPlans: choices,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await local.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
