/**
 * Pipeline benchmark on local worker processes: a chain of MatMul+Relu layers, run whole on one worker
 * pinned to one CPU, then split in two stages on two workers pinned to one CPU each. Prints JSON with
 * throughput, latency percentiles, the speed-up, and the pipeline efficiency (measured throughput over
 * the slowest stage's own throughput from its time in onnxruntime).
 *
 * Usage: npx tsx bench/pipeline.ts [--requests N] [--batch B] [--width W] [--layers L]
 */
import { parseArgs } from "node:util";
import { randomTensor } from "../src/onnx/ort.js";
import { startLocalWorkers } from "../src/runtime/coordinator/local-cluster.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { writeChain } from "./chain.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "60" },
    batch: { type: "string", default: "32" },
    width: { type: "string", default: "1024" },
    layers: { type: "string", default: "4" },
  },
});
const N = Number(values.requests);
const B = Number(values.batch);
const W = Number(values.width);
const L = Number(values.layers);

async function run(stages: number, inFlight: number) {
  const cpus = Array.from({ length: stages }, (_, i) => [i]);
  const cluster = await startLocalWorkers(cpus.map((c, i) => ({ name: `d${i}`, cpus: c, threads: 1 })));
  try {
    const p = await deploy(writeChain(stages, { layers: L, width: W, batch: B }), cluster.workers, {
      token: cluster.token,
      maxInFlight: inFlight,
    });
    const feeds = Array.from({ length: 4 }, (_, i) => ({ x: randomTensor("float32", [B, W], i + 1) }));
    await p.runMany({ count: 6, feeds: (i) => feeds[i % 4] }, { inFlight }); // warm up
    const before = await p.workerStats();
    const r = await p.runMany({ count: N, feeds: (i) => feeds[i % 4] }, { inFlight });
    const after = await p.workerStats();
    const stageMs = after.map((w, i) => {
      const a = w.stages[0];
      const b = before[i].stages[0];
      return (a.computeMs - b.computeMs) / (a.runs - b.runs);
    });
    await p.close();
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return {
      stages,
      inFlight,
      completed: r.completed,
      throughput: r3(r.throughput),
      latencyMs: { p50: r3(r.latencyMs.p50), p95: r3(r.latencyMs.p95), p99: r3(r.latencyMs.p99) },
      stageComputeMs: stageMs.map(r3),
      efficiency: r3(r.throughput / (1000 / Math.max(...stageMs))),
      pinned: cluster.pinned,
    };
  } finally {
    await cluster.stop();
  }
}

const whole = await run(1, 2);
const split = await run(2, 4);
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "pipeline",
      model: { layers: L, width: W, batch: B, hopBytes: B * W * 4 },
      requests: N,
      whole,
      pipelined: split,
      speedup: Math.round((split.throughput / whole.throughput) * 100) / 100,
    },
    null,
    2,
  )}\n`,
);
