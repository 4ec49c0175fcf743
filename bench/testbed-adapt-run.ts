/**
 * The coordinator side of the testbed chaos runs under live re-partitioning, run inside the testbed's
 * coordinator namespace by test/chaos-testbed-adapt.test.ts and bench/resilience.ts (`--bandwidth`): deploys squeezenet1_1 as a MAC-balanced two-stage
 * split on the testbed's workers with adaptation on, streams requests (16 distinct inputs in turn, 4 in
 * flight) for `durationMs`, prints `FAULT` on stdout at `faultAtMs` (the parent then changes the testbed), and
 * at the end prints one JSON line: completed, failed, wrong (outputs unlike the whole model's), answered twice,
 * the controller's replans and recoveries, when each replan happened and every completion's time (ms from the
 * start). `adapt: false` runs the same without adaptation (the old plan kept).
 *
 * argv[2]: JSON {cluster, workers, token, durationMs, faultAtMs, threshold}.
 */
import type { Cluster } from "../src/cluster/types.js";
import { emulatedCosts } from "../src/harness/emulated-profiles.js";
import { liveReplanner } from "../src/harness/live-replan.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { createSession, type ort } from "../src/onnx/ort.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import type { Tensors, WorkerAddress } from "../src/runtime/coordinator/pipeline.js";
import { deploySplit } from "../src/runtime/coordinator/run-split.js";
import { buildZooModel } from "../src/zoo/index.js";

const args = JSON.parse(process.argv[2]) as {
  cluster: Cluster;
  workers: WorkerAddress[];
  token: string;
  durationMs: number;
  faultAtMs: number;
  threshold: number;
  adapt?: boolean;
};

/** Max |a - b| over two float tensors, and max |b|. */
function maxDiff(a: ort.Tensor, b: ort.Tensor): { diff: number; scale: number } {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let diff = a.dims.join("x") === b.dims.join("x") ? 0 : Number.POSITIVE_INFINITY;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return { diff, scale };
}
const model = await analyzeModel(buildZooModel("squeezenet1_1"), { source: "squeezenet1_1" });
const order = choosePartitionOrder(model);
const two = assignByBoundaries(model, order, balancedCuts(model, order, 2));
const devices = [["core0"], ["core1"]];
// The re-planner prices from profiles of this machine (cached once measured), as `cleave run --adapt` on
// emulated devices does: priced from the cluster's declared speeds, a host faster than them measured both
// devices far from the plan before any fault (core1 at 0.39x), and the switch that followed could hold the
// split through the fault's cool-down.
const { profiles } = await emulatedCosts(model, args.cluster, {}, { coRun: false });
const feeds = Array.from({ length: 16 }, (_, i) => inputFeeds(model, 200 + i));
const whole = await createSession(model.graph.model);
const want: Tensors[] = [];
for (const f of feeds) want.push((await whole.run(f)) as Tensors);
await whole.release();
const split = await deploySplit(model, two, devices, args.cluster, {
  workers: args.workers,
  token: args.token,
  inFlight: 4,
  warmupMs: 500,
  adapt:
    args.adapt === false
      ? undefined
      : {
          evaluate: (exportSplit) =>
            liveReplanner({
              model,
              cluster: args.cluster,
              profiles,
              running: { assignment: two, devices },
              exportSplit: (s, tp) => exportSplit(s, tp),
            }).evaluate,
          policy: { holdMs: 2000, threshold: args.threshold },
        },
});
const c = split.controller;
const t0 = performance.now();
const replanAt: number[] = [];
c.on("replan", () => replanAt.push(performance.now() - t0));
const doneAt: number[] = [];
let completed = 0;
let failed = 0;
let wrong = 0;
let twice = 0;
let next = 0;
const answered = new Set<number>();
const errors: string[] = [];
const faultAt = setTimeout(() => process.stdout.write("FAULT\n"), args.faultAtMs);
const lane = async () => {
  while (performance.now() - t0 < args.durationMs) {
    const id = next++;
    const k = id % feeds.length;
    try {
      const out = await c.infer(feeds[k]);
      if (answered.has(id)) twice++;
      answered.add(id);
      completed++;
      doneAt.push(performance.now() - t0);
      for (const name of Object.keys(want[k])) {
        const { diff, scale } = maxDiff(out[name], want[k][name]);
        if (!(diff <= 1e-5 * scale)) wrong++;
      }
    } catch (err) {
      failed++;
      if (errors.length < 5) errors.push((err as Error).message);
    }
  }
};
await Promise.all(Array.from({ length: 4 }, lane));
clearTimeout(faultAt);
const result = {
  requests: next,
  completed,
  failed,
  wrong,
  twice,
  errors,
  replans: c.replans,
  recoveries: c.recoveries,
  replanAt,
  doneAt,
  deployed: c.deployed.manifest.stages.map((s) => ({ device: s.device, macs: s.macs })),
};
await split.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
