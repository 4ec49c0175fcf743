/**
 * The proof of the cost model. For every zoo model (CNNs, the detector, the transformers): profile the
 * whole model on this machine, then take random contiguous segments of its partition order, export each as its
 * own model (the split module's stage export), measure it and compare with the prediction from the whole
 * model's profile. Three measurements per segment, because this host's load moves wall-clock times:
 * - `error`: the segment's share of the whole model, measured in pairs (segment run after a whole-model run,
 *   median of the ratios), against the predicted share; follows a uniform slowdown of the machine;
 * - `fastestError`: the same with the fastest run of each (the least disturbed);
 * - `kernelError`: the segment's kernel time from its own profiled runs (per-kernel medians) against the whole
 *   model's per-node medians of its nodes: the structural error (fusions and layouts at cuts), load-proof.
 * Target: median absolute error <= 10% and 90th percentile <= 25% over segments longer than 1 ms. `perModel`
 * is the table of median and p90 per model. Then the scaling experiment: 1 and 2 threads as two devices,
 * calibrate from one and predict the other three ways (`--scaling-models ""` skips it). Prints one JSON object
 * (progress on stderr).
 *
 * usage: node dist/bench/cost-accuracy.js [--models a,b] [--segments 20] [--runs 15] [--threads 1] [--seed 1]
 *                                         [--scaling-calibrate resnet18] [--scaling-models mobilenet_v2,googlenet]
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Cluster, Device } from "../src/cluster/types.js";
import { analyticTimes, calibrateAnalytic } from "../src/cost/cost-analytic.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { measuredTimes } from "../src/cost/cost-measured.js";
import { calibrateRatio, scaleTimesByClass } from "../src/cost/cost-scaled.js";
import { measureKernelTime, measureLatency, measurePaired } from "../src/cost/measure.js";
import { type NodeTimes, scaleTimes, segmentKernelTime, segmentTime } from "../src/cost/node-times.js";
import { type Profile, profileModel } from "../src/cost/profile.js";
import { inputFeeds } from "../src/ir/input-values.js";
import { median, quantile } from "../src/cost/stats.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { buildStages, type StageModel } from "../src/export/stage.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { randomTensor } from "../src/onnx/ort.js";
import { seededRandom } from "../src/onnx/prng.js";
import { choosePartitionOrder, type PartitionOrder } from "../src/partition/order.js";
import { buildZooModel, zooNames } from "../src/zoo/index.js";

const { values } = parseArgs({
  options: {
    models: { type: "string" },
    segments: { type: "string", default: "20" },
    runs: { type: "string", default: "15" },
    threads: { type: "string", default: "1" },
    seed: { type: "string", default: "1" },
    "scaling-calibrate": { type: "string", default: "resnet18" },
    "scaling-models": { type: "string", default: "mobilenet_v2,googlenet,resnet18" },
    "scaling-segments": { type: "string", default: "8" },
  },
});
const SEGMENTS = Number(values.segments);
const RUNS = Number(values.runs);
const THREADS = Number(values.threads);
const MIN_MS = 1;
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Every zoo model by default. */
const CNNS = values.models?.split(",") ?? zooNames();

interface SegmentRow {
  start: number;
  end: number;
  nodes: number;
  bytesIn: number;
  bytesOut: number;
  measuredMs: number;
  predictedMs: number;
  /** Measured segment / whole model, paired runs (median of the pairs' ratios). */
  measuredShare: number;
  /** Predicted segment / predicted whole model. */
  predictedShare: number;
  /** predictedShare / measuredShare - 1: the error the machine's drift does not move. */
  error: number;
  /** Fastest segment run / fastest whole run: the shares on a quiet machine. */
  fastestShare: number;
  /** predictedShare / fastestShare - 1. */
  fastestError: number;
  /** predictedMs / measuredMs - 1: absolute, moved by any drift since the profile. */
  absoluteError: number;
  /** The segment model's kernel time (sum of per-kernel medians of its own profiled runs). */
  kernelMs: number;
  /** The predicted kernel time: the whole model's per-node medians of the segment, no scale, no overhead. */
  predictedKernelMs: number;
  /** predictedKernelMs / kernelMs - 1: the structural error (fusions and layouts across the cut), load-proof. */
  kernelError: number;
}

/** The stage model running positions [start, end) of the partition order. */
function segmentStage(model: AnalyzedModel, order: PartitionOrder, start: number, end: number): StageModel {
  const n = order.nodes.length;
  const bounds = [start, end].filter((b) => b > 0 && b < n);
  return buildStages(model, assignByBoundaries(model, order, bounds))[start > 0 ? 1 : 0];
}

function stageFeeds(model: AnalyzedModel, stage: StageModel) {
  return Object.fromEntries(
    stage.inputs.map((t, i) => {
      const ty = model.types.get(t)!;
      return [t, randomTensor(ty.dtype, ty.shape, i + 1)];
    }),
  );
}

function errorStats(rows: readonly SegmentRow[]) {
  const over = rows.filter((r) => r.measuredMs > MIN_MS);
  const errs = over.map((r) => Math.abs(r.error));
  const abs = over.map((r) => Math.abs(r.absoluteError));
  const fastest = over.map((r) => Math.abs(r.fastestError));
  const kernel = over.map((r) => Math.abs(r.kernelError));
  return {
    segmentsOver1ms: errs.length,
    medianAbsError: round(median(errs)),
    p90AbsError: round(quantile(errs, 0.9)),
    medianAbsErrorFastest: round(median(fastest)),
    p90AbsErrorFastest: round(quantile(fastest, 0.9)),
    medianAbsKernelError: round(median(kernel)),
    p90AbsKernelError: round(quantile(kernel, 0.9)),
    medianAbsErrorAbsolute: round(median(abs)),
    meanSignedError: round(
      rows.filter((r) => r.measuredMs > MIN_MS).reduce((s, r) => s + r.error, 0) / Math.max(1, errs.length),
    ),
  };
}

function round(v: number, digits = 4): number {
  return Number.isFinite(v) ? Number(v.toFixed(digits)) : v;
}

function localDevice(name: string, macsPerSecond: number): Device {
  return {
    name,
    kind: "cpu",
    macsPerSecond: { float32: macsPerSecond },
    memoryBandwidth: 20e9,
    memory: 8 * 2 ** 30,
    idlePower: 0,
    activePower: 0,
  };
}

async function accuracy(name: string, seed: number) {
  const model = await analyzeModel(buildZooModel(name), { source: name });
  const order = choosePartitionOrder(model);
  log(`${name}: profiling (${THREADS} thread(s), ${RUNS} runs)`);
  const profile = await profileModel(model.graph.model, {
    analyzed: model,
    source: name,
    threads: THREADS,
    runs: RUNS,
  });
  // Through the public cost-model API: a one-device cluster whose device has this profile.
  const device = localDevice("local", model.totals.macs / profile.wholeRun);
  const cluster: Cluster = {
    name: "local",
    devices: [device],
    links: [],
    inputDevice: "local",
    outputDevice: "local",
  };
  const cost = costModelFor(model, cluster, { profiles: { local: profile } });
  const kernelTimes = measuredTimes(model, { ...profile, scale: 1 });
  const all = model.graph.nodes.filter((n) => !n.isConstant).map((n) => n.index);
  const wholePredicted = cost.segmentLatency(device, all);
  const wholeFeeds = inputFeeds(model);
  const wholeMeasured = await measureLatency(model.graph.model, wholeFeeds, {
    threads: THREADS,
    runs: RUNS,
  });

  const n = order.nodes.length;
  const rnd = seededRandom(seed);
  const rows: SegmentRow[] = [];
  const seen = new Set<string>();
  for (
    let attempt = 0;
    attempt < SEGMENTS * 4 && rows.filter((r) => r.measuredMs > MIN_MS).length < SEGMENTS;
    attempt++
  ) {
    const start = Math.floor(rnd() * n);
    const end = start + 1 + Math.floor(rnd() * (n - start));
    if (seen.has(`${start}:${end}`) || (start === 0 && end === n)) continue;
    seen.add(`${start}:${end}`);
    const stage = segmentStage(model, order, start, end);
    const paired = await measurePaired(stage.model, stageFeeds(model, stage), model.graph.model, wholeFeeds, {
      threads: THREADS,
      runs: RUNS,
    });
    const measured = paired.latency;
    const predicted = cost.segmentLatency(device, stage.nodes);
    const predictedShare = predicted / wholePredicted;
    // Kernels only, unscaled: the profile's per-node medians, as the segment's own profile measures them.
    const predictedKernels = segmentKernelTime(model, kernelTimes, stage.nodes);
    const kernels = await measureKernelTime(stage.model, stageFeeds(model, stage), {
      threads: THREADS,
      runs: RUNS,
    });
    rows.push({
      start,
      end,
      nodes: stage.nodes.length,
      bytesIn: stage.bytesIn,
      bytesOut: stage.bytesOut,
      measuredMs: round(measured * 1e3),
      predictedMs: round(predicted * 1e3),
      measuredShare: round(paired.ratio),
      predictedShare: round(predictedShare),
      error: round(predictedShare / paired.ratio - 1),
      fastestShare: round(paired.fastest / paired.referenceFastest),
      fastestError: round(predictedShare / (paired.fastest / paired.referenceFastest) - 1),
      absoluteError: round((predicted - measured) / measured),
      kernelMs: round(kernels * 1e3),
      predictedKernelMs: round(predictedKernels * 1e3),
      kernelError: round(predictedKernels / kernels - 1),
    });
  }
  const stats = errorStats(rows);
  log(`${name}: ${rows.length} segments, median |err| ${stats.medianAbsError}, p90 ${stats.p90AbsError}`);
  return {
    model: name,
    nodes: model.graph.nodes.length,
    gmacs: round(model.totals.macs / 1e9, 3),
    wholeMeasuredMs: round(wholeMeasured * 1e3),
    wholePredictedMs: round(wholePredicted * 1e3),
    sumOfNodeMediansMs: round(Object.values(profile.latency).reduce((s, v) => s + v, 0) * 1e3),
    ...stats,
    segments: rows,
  };
}

/** 1 and 2 threads as two devices: calibrate from 1 thread, predict 2 threads. */
async function scaling() {
  const calName = values["scaling-calibrate"]!;
  const targets = values["scaling-models"]!.split(",");
  const perModel = Number(values["scaling-segments"]);
  const profiles = new Map<string, { model: AnalyzedModel; p1: Profile; p2?: Profile }>();
  const load = async (name: string, two: boolean) => {
    const model = await analyzeModel(buildZooModel(name), { source: name });
    log(`scaling: profiling ${name} at 1${two ? " and 2" : ""} thread(s)`);
    const p1 = await profileModel(model.graph.model, {
      analyzed: model,
      source: name,
      threads: 1,
      runs: RUNS,
    });
    const p2 = two
      ? await profileModel(model.graph.model, { analyzed: model, source: name, threads: 2, runs: RUNS })
      : undefined;
    profiles.set(name, { model, p1, p2 });
  };
  await load(calName, true);
  const cal = profiles.get(calName)!;
  const ratio = calibrateRatio(
    cal.model,
    measuredTimes(cal.model, cal.p1),
    measuredTimes(cal.model, cal.p2!),
    "1-thread",
  );
  // Nominal figures: one core's MAC rate as measured on the calibration model; two threads = two cores.
  const r1 = cal.model.totals.macs / cal.p1.wholeRun;
  const dev1 = localDevice("1-thread", r1);
  const dev2 = localDevice("2-threads", 2 * r1);
  const results = [];
  for (const name of targets) {
    if (!profiles.has(name)) await load(name, false);
    const { model, p1 } = profiles.get(name)!;
    const t1 = measuredTimes(model, p1);
    const methods: Record<string, NodeTimes> = {
      nominalRatio: scaleTimes(t1, r1 / (2 * r1)),
      calibratedRatio: scaleTimesByClass(model, t1, ratio),
      analytic: analyticTimes(model, dev2, calibrateAnalytic(model, t1, dev1)),
    };
    const order = choosePartitionOrder(model);
    const n = order.nodes.length;
    const rnd = seededRandom(99);
    const cases: Array<{ start: number; end: number }> = [{ start: 0, end: n }];
    while (cases.length < perModel + 1) {
      const start = Math.floor(rnd() * n);
      cases.push({ start, end: start + 1 + Math.floor(rnd() * (n - start)) });
    }
    const rows = [];
    for (const c of cases) {
      const whole = c.start === 0 && c.end === n;
      const stage = whole ? undefined : segmentStage(model, order, c.start, c.end);
      const nodes = stage?.nodes ?? model.graph.nodes.filter((x) => !x.isConstant).map((x) => x.index);
      const measured = await measureLatency(
        stage?.model ?? model.graph.model,
        stage ? stageFeeds(model, stage) : inputFeeds(model),
        {
          threads: 2,
          runs: RUNS,
        },
      );
      const row: Record<string, number | string | boolean> = {
        start: c.start,
        end: c.end,
        whole,
        measuredMs: round(measured * 1e3),
      };
      for (const [m, times] of Object.entries(methods))
        row[m] = round((segmentTime(model, times, nodes) - measured) / measured);
      rows.push(row);
    }
    const summary: Record<string, number> = {};
    for (const m of Object.keys(methods)) {
      summary[`${m}MedianAbsError`] = round(
        median(rows.filter((r) => (r.measuredMs as number) > MIN_MS).map((r) => Math.abs(r[m] as number))),
      );
    }
    log(`scaling: ${name} ${JSON.stringify(summary)}`);
    results.push({ model: name, inSample: name === calName, ...summary, cases: rows });
  }
  return {
    calibrationModel: calName,
    speedup2Threads: round(cal.p1.wholeRun / cal.p2!.wholeRun, 3),
    ratio: {
      overall: round(ratio.overall),
      byClass: Object.fromEntries(Object.entries(ratio.byClass).map(([k, v]) => [k, round(v)])),
    },
    models: results,
  };
}

const started = Date.now();
const loadBefore = loadavg();
const models = [];
for (const [i, name] of CNNS.entries()) models.push(await accuracy(name, Number(values.seed) + i));
const pooled = models.flatMap((m) => m.segments);
const overall = errorStats(pooled);
// `--scaling-models ""` skips the scaling experiment.
const scalingResult = values["scaling-models"] === "" ? undefined : await scaling();
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "cost-accuracy",
      threads: THREADS,
      runsPerMeasurement: RUNS,
      target: { medianAbsError: 0.1, p90AbsError: 0.25, forSegmentsOverMs: MIN_MS },
      overall: { ...overall, meetsTarget: overall.medianAbsError <= 0.1 && overall.p90AbsError <= 0.25 },
      perModel: models.map(({ segments: _s, ...rest }) => rest),
      scaling: scalingResult,
      machine: {
        loadavgBefore: loadBefore.map((v) => round(v, 2)),
        loadavgAfter: loadavg().map((v) => round(v, 2)),
      },
      seconds: Math.round((Date.now() - started) / 1000),
      segments: models.map((m) => ({ model: m.model, rows: m.segments })),
    },
    null,
    2,
  )}\n`,
);
