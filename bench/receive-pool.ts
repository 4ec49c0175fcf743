/**
 * Receive-pool benchmark: the first stage of EfficientNet-B0 (its 588 KiB input comes from the coordinator
 * every request) on two pinned worker processes on the same CPU, one reusing its stage-input buffers (the
 * default) and one receiving every frame into a new buffer (`--no-receive-pool`). The two take turns in
 * rounds, so a drift of the machine's speed hits both alike. Prints JSON: throughput, onnxruntime time and
 * the worker process's CPU time per request for each, and their ratios.
 *
 * Usage: node dist/bench/receive-pool.js [--requests N] [--rounds R] [--cpu C]
 */
import { parseArgs } from "node:util";
import { loadCluster } from "../src/cluster/load.js";
import { localClusterPath } from "../src/cli/load.js";
import { assignByTensors } from "../src/partition/assign.js";
import { buildStages } from "../src/export/stage.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { deploySplit, type SplitMeasurement, wholeModel } from "../src/runtime/coordinator/run-split.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "300" },
    rounds: { type: "string", default: "6" },
    cpu: { type: "string", default: "1" },
  },
});
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const cpu = Number(values.cpu);

const whole = await analyzeModel(buildZooModel("efficientnet_b0"), { source: "efficientnet_b0" });
const [first] = buildStages(whole, assignByTensors(whole, ["features.4.1.add"]));
const stage = await analyzeModel(first.model, { source: "efficientnet_b0 stage 0" });
const cluster = loadCluster(localClusterPath());
const device = cluster.devices[0].name;

const variants = [
  { name: "pool", args: [] as string[] },
  { name: "fresh", args: ["--no-receive-pool"] },
];
const started = await Promise.all(
  variants.map((v) =>
    startLocalWorkers([{ name: device, cpus: [cpu], threads: 1 }], {
      wrap: (_d, cmd) => [...cmd, ...v.args],
    }),
  ),
);
try {
  const splits = await Promise.all(
    started.map((w) =>
      deploySplit(stage, wholeModel(stage), [device], cluster, {
        workers: w.workers,
        token: w.token,
        verify: false,
        inFlight: 2,
      }),
    ),
  );
  const rows: SplitMeasurement[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < variants.length; i++)
      rows[i].push(await splits[i].measure(Math.ceil(requests / rounds)));
  for (const s of splits) await s.close();
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const summary = variants.map((v, i) => {
    const ms = rows[i];
    const cpuMs = mean(ms.map((m) => m.stageCpuMs[device]));
    const ortMs = mean(ms.map((m) => m.stageBusyMs[device]));
    return {
      variant: v.name,
      throughput: mean(ms.map((m) => m.report.throughput)),
      roundThroughputs: ms.map((m) => +m.report.throughput.toFixed(1)),
      workerCpuMsPerRequest: cpuMs,
      onnxruntimeMsPerRequest: ortMs,
      otherCpuMsPerRequest: cpuMs - ortMs,
      inputBytes: first.bytesIn,
    };
  });
  const [pool, fresh] = summary;
  console.log(
    JSON.stringify(
      {
        bench: "receive-pool",
        model: "efficientnet_b0 stage 0 (input 1x3x224x224 f32)",
        cpu,
        requests,
        rounds,
        results: summary,
        ratios: {
          throughputPoolOverFresh: pool.throughput / fresh.throughput,
          workerCpuFreshOverPool: fresh.workerCpuMsPerRequest / pool.workerCpuMsPerRequest,
          otherCpuFreshOverPool: fresh.otherCpuMsPerRequest / pool.otherCpuMsPerRequest,
        },
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.all(started.map((w) => w.stop()));
}
