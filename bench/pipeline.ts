/**
 * Pipeline benchmark on local worker processes: a chain of MatMul+Relu layers, run whole on one worker
 * pinned to one CPU, then split in two stages on two workers pinned to one CPU each. Prints JSON with
 * throughput, latency percentiles, the speed-up, and the pipeline efficiency (measured throughput over
 * the slowest stage's own throughput from its time in onnxruntime).
 *
 * Usage: npx tsx bench/pipeline.ts [--requests N] [--batch B] [--width W] [--layers L]
 */
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Manifest } from "../src/export/manifest.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { randomTensor } from "../src/onnx/ort.js";
import { startLocalWorkers } from "../src/runtime/local-cluster.js";
import { deploy } from "../src/runtime/deploy.js";

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

/** Writes a split of `layers` MatMul+Relu layers into `stages` equal stages; returns the folder. */
function writeChain(stages: number): string {
  const dir = mkdtempSync(join(tmpdir(), "cleave-bench-"));
  const per = L / stages;
  const name = (i: number) => (i === 0 ? "x" : i === L ? "y" : `h${i}`);
  const spec = (n: string) => ({ name: n, dtype: "float32" as const, shape: [B, W] });
  const st = Array.from({ length: stages }, (_, s) => {
    const g = new GraphBuilder(`s${s}`, { seed: s + 1 });
    g.input(name(s * per), "float32", [B, W]);
    for (let i = s * per; i < (s + 1) * per; i++) {
      const w = g.weight(`W${i}`, [W, W]);
      const m = g.node("MatMul", [name(i), w], {}, `m${i}`);
      g.node("Relu", [m], {}, name(i + 1));
    }
    g.output(name((s + 1) * per), "float32", [B, W]);
    const bytes = encodeModel(g.toModel());
    const file = `stage_${s}.onnx`;
    writeFileSync(join(dir, file), bytes);
    return {
      index: s,
      file,
      inputs: [name(s * per)],
      outputs: [name((s + 1) * per)],
      params: per * W * W,
      macs: per * B * W * W,
      bytesIn: B * W * 4,
      bytesOut: B * W * 4,
      nodes: 2 * per,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    };
  });
  const tensors = Object.fromEntries(
    Array.from({ length: stages + 1 }, (_, s) => [name(s * per), spec(name(s * per))]),
  );
  const manifest: Manifest = {
    version: 1,
    model: "chain",
    inputs: [spec("x")],
    outputs: [spec("y")],
    tensors,
    stages: st,
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
  return dir;
}

async function run(stages: number, inFlight: number) {
  const cpus = Array.from({ length: stages }, (_, i) => [i]);
  const cluster = await startLocalWorkers(cpus.map((c, i) => ({ name: `d${i}`, cpus: c, threads: 1 })));
  try {
    const p = await deploy(writeChain(stages), cluster.workers, {
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
