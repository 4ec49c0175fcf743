/**
 * Switch benchmark: how long requests pause when the controller moves a running split to another. A model as
 * a two-stage MAC-balanced pipeline on two pinned local workers streams requests (4 in flight) while the
 * split is switched back and forth (stage devices swapped; stage files cached on both workers after the
 * first two switches). For each switch: `switchMs` (the controller's figure) and the longest gap between two
 * completed requests from the switch's start to its end (the pause a client sees), against the median gap of
 * the steady stream. Prints JSON.
 *
 * Usage: node dist/bench/switch.js [--model NAME] [--switches N]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildStages } from "../src/export/stage.js";
import { writeSplit } from "../src/export/write.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { reassignStages } from "../src/runtime/control/reassign.js";
import { startController } from "../src/runtime/control/service.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "efficientnet_b0" },
    switches: { type: "string", default: "4" },
  },
});
const switches = Number(values.switches);
const model = await analyzeModel(buildZooModel(values.model), { source: values.model });
const order = choosePartitionOrder(model);
const two = assignByBoundaries(model, order, balancedCuts(model, order, 2));
const dir = mkdtempSync(join(tmpdir(), "cleave-bench-switch-"));
const split = join(dir, "split");
const manifest = writeSplit(model, buildStages(model, two), split, {
  modelPath: values.model,
  devices: [["core0"], ["core1"]],
});
const swapped = {
  ...manifest,
  stages: manifest.stages.map((s, i) => ({ ...s, device: i === 0 ? "core1" : "core0" })),
};
const workers = await startLocalWorkers([
  { name: "core0", cpus: [0] },
  { name: "core1", cpus: [1] },
]);
const feeds = inputFeeds(model);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  const c = await startController({ manifest, dir: split }, workers.workers, {
    deploy: { token: workers.token, maxInFlight: 4, timeoutMs: 30000 },
    replan: async (alive) => ({ manifest: reassignStages(manifest, alive), dir: split }),
  });
  const done: number[] = [];
  let failed = 0;
  let stop = false;
  const lane = async () => {
    while (!stop) {
      try {
        await c.infer(feeds);
        done.push(performance.now());
      } catch {
        failed++;
      }
    }
  };
  const lanes = Array.from({ length: 4 }, lane);
  await sleep(3000);
  const rounds: Array<{ switchMs: number; longestGapMs: number; shippedBytes: number }> = [];
  for (let i = 0; i < switches; i++) {
    const t0 = performance.now();
    const e = await c.switchTo({ manifest: i % 2 === 0 ? swapped : manifest, dir: split }, `bench ${i}`);
    const t1 = performance.now();
    await sleep(2500);
    // Gaps between completions from the switch's start to its end (the first completion after it included).
    const inside = done.filter((t) => t >= t0);
    const marks = [t0, ...inside.filter((t) => t <= t1), ...inside.filter((t) => t > t1).slice(0, 1)];
    let longest = 0;
    for (let k = 1; k < marks.length; k++) longest = Math.max(longest, marks[k] - marks[k - 1]);
    rounds.push({ switchMs: e.switchMs, longestGapMs: longest, shippedBytes: e.shippedBytes });
  }
  stop = true;
  await Promise.all(lanes);
  const gaps = done
    .slice(1)
    .map((t, k) => t - done[k])
    .sort((a, b) => a - b);
  await c.close();
  process.stdout.write(
    `${JSON.stringify(
      {
        model: values.model,
        completed: done.length,
        failed,
        medianGapMs: gaps[Math.floor(gaps.length / 2)],
        rounds,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await workers.stop();
  rmSync(dir, { recursive: true, force: true });
}
