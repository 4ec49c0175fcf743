import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cluster, Device, Link } from "../src/cluster/types.js";
import { analyticTimes, calibrateAnalytic, DEFAULT_CALIBRATION } from "../src/cost/cost-analytic.js";
import { costModelFor, RUNTIME_MEMORY } from "../src/cost/cost-factory.js";
import { measuredTimes } from "../src/cost/cost-measured.js";
import { calibrateRatio, scaleTimesByClass } from "../src/cost/cost-scaled.js";
import { estimateSplit } from "../src/cost/estimate.js";
import type { NodeTimes } from "../src/cost/node-times.js";
import { segmentTime } from "../src/cost/node-times.js";
import { modelIdentity, type Profile } from "../src/cost/profile.js";
import { segmentIO, segmentMemory } from "../src/cost/segment.js";
import { CleaveError } from "../src/errors.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";

const close = (a: number, b: number, rel = 1e-9) =>
  assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-30), `${a} != ${b}`);

/** conv -> bn -> relu -> conv2 -> relu2, on [1, 4, 8, 8]. */
async function convChain(): Promise<AnalyzedModel> {
  const b = new GraphBuilder("chain");
  const x = b.input("x", "float32", [1, 4, 8, 8]);
  const c = b.node("Conv", [x, b.weight("w", [4, 4, 3, 3])], { pads: [1, 1, 1, 1] }, "conv");
  const ones = () => b.weight("p", [4], "ones");
  const bn = b.node("BatchNormalization", [c, ones(), ones(), ones(), ones()], {}, "bn");
  const r = b.node("Relu", [bn], {}, "relu");
  const c2 = b.node("Conv", [r, b.weight("w2", [4, 4, 3, 3])], { pads: [1, 1, 1, 1] }, "conv2");
  b.output(b.node("Relu", [c2], {}, "relu2"));
  return analyzeModel(b.toModel(), { source: "chain.onnx" });
}

const idx = (m: AnalyzedModel, ...names: string[]) => names.map((n) => m.graph.node(n).index);

function times(m: AnalyzedModel, over: Partial<NodeTimes["overhead"]> = {}): NodeTimes {
  const n = m.graph.nodes.length;
  const [conv, bn, relu, conv2, relu2] = idx(m, "conv", "bn", "relu", "conv2", "relu2");
  const latency = new Float64Array(n);
  const standalone = new Float64Array(n);
  const anchorOf = new Int32Array(n);
  latency[conv] = 10e-3;
  latency[conv2] = 5e-3;
  anchorOf[conv] = conv;
  anchorOf[bn] = conv;
  anchorOf[relu] = conv;
  anchorOf[conv2] = conv2;
  anchorOf[relu2] = conv2;
  standalone[bn] = 1e-3;
  standalone[relu] = 0.5e-3;
  standalone[relu2] = 0.25e-3;
  const overhead = { fixed: 1e-3, perByteIn: 0, perByteOut: 0, perByteLayout: 0, ...over };
  return { latency, standalone, anchorOf, blocked: new Uint8Array(n), overhead };
}

test("segment latency: kernels of whole fusion groups, standalone time for nodes a cut separates", async () => {
  const m = await convChain();
  const t = times(m);
  const cases: Array<[string[], number]> = [
    [["conv", "bn", "relu", "conv2", "relu2"], 10e-3 + 5e-3 + 1e-3],
    [["conv", "bn", "relu"], 10e-3 + 1e-3],
    [["conv", "bn"], 10e-3 + 1e-3], // relu left out: the Conv kernel still runs
    [["bn", "relu", "conv2"], 1e-3 + 0.5e-3 + 5e-3 + 1e-3], // bn and relu run alone
    [["relu", "conv2", "relu2"], 0.5e-3 + 5e-3 + 1e-3],
    [["relu2"], 0.25e-3 + 1e-3],
  ];
  for (const [names, want] of cases) close(segmentTime(m, t, idx(m, ...names)), want);
});

test("segment latency adds per-byte overhead for the segment's boundary tensors", async () => {
  const m = await convChain();
  const bytes = 4 * 8 * 8 * 4; // every activation is [1, 4, 8, 8] float32
  const seg = idx(m, "bn", "relu", "conv2");
  assert.deepEqual(segmentIO(m, seg), { bytesIn: bytes, bytesOut: bytes, bytesBlocked: 0 });
  const t = times(m, { perByteIn: 1e-9, perByteOut: 2e-9 });
  close(segmentTime(m, t, seg), 1e-3 + 0.5e-3 + 5e-3 + 1e-3 + bytes * 1e-9 + bytes * 2e-9);
  // Blocked-layout anchors add conversions for boundary tensors they read or write (not for graph inputs).
  t.blocked[m.graph.node("conv2").index] = 1;
  t.overhead = { ...t.overhead, perByteLayout: 1e-8 };
  assert.equal(segmentIO(m, seg, undefined, (i) => i === m.graph.node("conv2").index).bytesBlocked, bytes);
  close(segmentTime(m, t, idx(m, "conv2", "relu2")), 5e-3 + 1e-3 + bytes * (1e-9 + 2e-9) + bytes * 1e-8 * 2);
});

test("peak memory: weights once, live activations in execution order", async () => {
  const b = new GraphBuilder("live");
  const x = b.input("x", "float32", [1, 4, 8, 8]);
  const a = b.node("Relu", [x], {}, "ra");
  const r = b.node("Relu", [a], {}, "rb");
  const c = b.node("Add", [a, r], {}, "add");
  const w = b.weight("w", [1, 4, 1, 1]);
  const d = b.node("Mul", [c, w], {}, "mul");
  const e = b.node("Mul", [d, w], {}, "mul2");
  b.output(e);
  const m = await analyzeModel(b.toModel());
  const t = 4 * 8 * 8 * 4;
  // All: x; +a (x freed); +b; +c (a, b, c live: peak 3t); then c -> d -> e.
  assert.deepEqual(segmentMemory(m, idx(m, "ra", "rb", "add", "mul", "mul2")), {
    weights: 16,
    activations: 3 * t,
  });
  // [rb, add]: a comes from outside (live until add), b and c made here, c handed on.
  assert.deepEqual(segmentMemory(m, idx(m, "rb", "add")), { weights: 0, activations: 3 * t });
  // [mul, mul2]: the shared weight counts once.
  assert.deepEqual(segmentMemory(m, idx(m, "mul", "mul2")), { weights: 16, activations: 2 * t });
  // [ra]: a is handed on; x is freed after its last use.
  assert.deepEqual(segmentMemory(m, idx(m, "ra")), { weights: 0, activations: 2 * t });
});

const DEVICE: Device = {
  name: "cpu-a",
  kind: "cpu",
  macsPerSecond: { float32: 10e9 },
  memoryBandwidth: 10e9,
  memory: 2 ** 30,
  idlePower: 1,
  activePower: 5,
};

function syntheticProfile(m: AnalyzedModel, file = "chain.onnx"): Profile {
  const t = times(m);
  const latency: Record<string, number> = {};
  const fusedInto: Record<string, string> = {};
  const standalone: Record<string, number> = {};
  m.graph.nodes.forEach((n, i) => {
    if (t.anchorOf[i] === i) latency[n.name] = t.latency[i];
    else {
      latency[n.name] = 0;
      fusedInto[n.name] = m.graph.nodes[t.anchorOf[i]].name;
      standalone[n.name] = t.standalone[i];
    }
  });
  return {
    format: "cleave-profile",
    version: 1,
    model: { ...modelIdentity(m.graph), file },
    device: { cpu: "test", cpus: 1, threads: 1, platform: "linux", arch: "x64", onnxruntime: "1.30.0" },
    inputShapes: { x: [1, 4, 8, 8] },
    warmup: 1,
    runs: 1,
    latency,
    fusedInto,
    removed: [],
    blocked: [],
    standalone,
    unattributed: 0,
    kernelTotal: 15e-3,
    wholeRun: 16e-3,
    scale: 1,
    overhead: t.overhead,
  };
}

function cluster(devices: Device[], links: Link[] = []): Cluster {
  return {
    name: "t",
    devices,
    links,
    inputDevice: devices[0].name,
    outputDevice: devices[devices.length - 1].name,
  };
}

test("the factory prices each device: own profile, scaled CPU, calibrated analytic accelerator", async () => {
  const m = await convChain();
  const slow: Device = { ...DEVICE, name: "cpu-b", macsPerSecond: { float32: 2.5e9 } };
  const acc: Device = { ...DEVICE, name: "acc", kind: "accelerator", macsPerSecond: { float32: 100e9 } };
  const cost = costModelFor(m, cluster([DEVICE, slow, acc]), { profiles: { "cpu-a": syntheticProfile(m) } });
  assert.deepEqual(cost.describe(DEVICE), { source: "measured" });
  assert.deepEqual(cost.describe(slow), { source: "scaled", reference: "cpu-a" });
  assert.deepEqual(cost.describe(acc), { source: "analytic", reference: "cpu-a" });
  const all = m.graph.nodes.map((n) => n.index);
  close(cost.segmentLatency(DEVICE, all), 16e-3);
  close(cost.segmentLatency(slow, all), 4 * 16e-3); // 4x slower MAC rate
  close(cost.segmentEnergy(DEVICE, all), 5 * 16e-3);
  assert.ok(cost.segmentLatency(acc, all) < cost.segmentLatency(DEVICE, all));
  const lat = cost.nodeLatencies(DEVICE);
  close(lat[m.graph.node("conv").index], 10e-3);
  assert.equal(lat[m.graph.node("bn").index], 0);
  const mem = segmentMemory(m, all);
  assert.equal(cost.segmentMemory(DEVICE, all), mem.weights + mem.activations + RUNTIME_MEMORY.cpu);
  assert.equal(cost.segmentMemory(acc, all), mem.weights + mem.activations);
  const link: Link = {
    devices: ["cpu-a", "acc"],
    kind: "ethernet",
    bandwidth: 125e6,
    latency: 1e-4,
    energyPerBit: 5e-9,
  };
  const tr = cost.transfer(link, 1e6);
  close(tr.time, 1e-4 + 1e6 / 125e6);
  close(tr.energy, 8e6 * 5e-9);
});

test("a profile of another model, or a measured device without a profile, is refused with one line", async () => {
  const m = await convChain();
  const b = new GraphBuilder("other");
  b.output(b.node("Relu", [b.input("x", "float32", [1, 4])], {}, "relu"));
  const other = await analyzeModel(b.toModel(), { source: "other.onnx" });
  const withFile = { ...DEVICE, profile: "profiles/chain.json" };
  const cost = costModelFor(other, cluster([withFile]), { profiles: { "cpu-a": syntheticProfile(m) } });
  assert.throws(
    () => cost.segmentLatency(withFile, [0]),
    (e: unknown) =>
      e instanceof CleaveError &&
      e.message ===
        `profiles/chain.json: profile is for model 'chain.onnx' (5 nodes), not 'other.onnx' (1 nodes); profile this model with cleave profile`,
  );
  const forced = costModelFor(m, cluster([DEVICE]), { mode: { "cpu-a": "measured" } });
  assert.throws(() => forced.segmentLatency(DEVICE, [0]), /device 'cpu-a' has no profile/);
  assert.throws(
    () => costModelFor(m, cluster([DEVICE]), { profiles: { ghost: syntheticProfile(m) } }),
    /profile given for unknown device 'ghost'/,
  );
});

test("uncalibrated analytic times follow the roofline formula", async () => {
  const m = await convChain();
  const t = analyticTimes(m, DEVICE);
  const conv = m.graph.node("conv").index;
  const c = m.costs[conv];
  const compute = c.macs / (10e9 * DEFAULT_CALIBRATION.compute.Conv);
  const memory = (c.bytesRead + c.bytesWritten) / (10e9 * DEFAULT_CALIBRATION.defaultMemory);
  close(t.latency[conv], DEFAULT_CALIBRATION.perNode + Math.max(compute, memory));
  const relu = m.graph.node("relu").index;
  const r = m.costs[relu];
  close(t.latency[relu], DEFAULT_CALIBRATION.perNode + (r.bytesRead + r.bytesWritten) / (10e9 * 0.5));
});

test("analytic calibration reproduces the reference device and scales to a faster one", async () => {
  const m = await convChain();
  // Conv kernels at exactly 40% of the nominal rate plus a 0.1 us per-node cost, which relu2 (now its own
  // near-empty kernel) shows.
  const profile = syntheticProfile(m);
  delete profile.fusedInto.relu2;
  delete profile.standalone.relu2;
  profile.latency.relu2 = 0.1e-6;
  for (const name of ["conv", "conv2"]) {
    const group = m.graph.nodes.filter((n) => profile.fusedInto[n.name] === name || n.name === name);
    const macs = group.reduce((s, n) => s + m.costs[n.index].macs, 0);
    profile.latency[name] = 0.1e-6 + macs / (0.4 * 10e9);
  }
  const ref = measuredTimes(m, profile);
  const cal = calibrateAnalytic(m, ref, DEVICE);
  close(cal.compute.Conv, 0.4, 1e-6);
  const same = analyticTimes(m, DEVICE, cal);
  const conv = m.graph.node("conv").index;
  close(same.latency[conv], ref.latency[conv], 1e-6);
  close(cal.perNode, 0.1e-6);
  const fast = analyticTimes(m, { ...DEVICE, macsPerSecond: { float32: 40e9 } }, cal);
  close(fast.latency[conv], 0.025e-6 + (ref.latency[conv] - 0.1e-6) / 4, 1e-6);
});

test("a ratio calibrated on one model scales another model's profile per operator class", async () => {
  const m = await convChain();
  const ref = times(m);
  const target = times(m);
  target.latency[m.graph.node("conv").index] *= 3;
  target.latency[m.graph.node("conv2").index] *= 3;
  target.overhead = { ...target.overhead, fixed: 2e-3 };
  const ratio = calibrateRatio(m, ref, target, "a");
  close(ratio.byClass.Conv, 3);
  close(ratio.overall, 3);
  close(ratio.overhead, 2);
  const scaled = scaleTimesByClass(m, ref, ratio);
  close(scaled.latency[m.graph.node("conv2").index], 15e-3);
  close(scaled.standalone[m.graph.node("relu").index], 0.5e-3 * 3); // Relu unseen: overall ratio
  close(scaled.overhead.fixed, 2e-3);
});

test("estimateSplit sums stages and transfers and finds the bottleneck", async () => {
  const m = await convChain();
  const b: Device = { ...DEVICE, name: "cpu-b" };
  const link: Link = {
    devices: ["cpu-a", "cpu-b"],
    kind: "ethernet",
    bandwidth: 1e6,
    latency: 1e-3,
    energyPerBit: 1e-9,
  };
  const cl = cluster([DEVICE, b], [link]);
  const cost = costModelFor(m, cl, {
    profiles: { "cpu-a": syntheticProfile(m), "cpu-b": syntheticProfile(m) },
  });
  const stageOf = new Int32Array(m.graph.nodes.length);
  for (const n of ["conv2", "relu2"]) stageOf[m.graph.node(n).index] = 1;
  const est = estimateSplit(m, cl, cost, stageOf, ["cpu-a", "cpu-b"]);
  close(est.stages[0].latency, 11e-3);
  close(est.stages[1].latency, 6e-3);
  assert.equal(est.transfers.length, 1);
  const bytes = 4 * 8 * 8 * 4;
  assert.deepEqual(
    { ...est.transfers[0], time: 0, energy: 0 },
    { from: "cpu-a", to: "cpu-b", what: "stage 0 -> 1", bytes, time: 0, energy: 0 },
  );
  const tt = 1e-3 + bytes / 1e6;
  close(est.endToEnd, 11e-3 + 6e-3 + tt);
  close(est.throughput, 1 / Math.max(11e-3, 6e-3, tt));
  assert.equal(est.bottleneck, "cpu-a");
  assert.deepEqual(est.overMemory, []);
  assert.throws(
    () => estimateSplit(m, cluster([DEVICE, { ...b, name: "cpu-c" }]), cost, stageOf, ["cpu-a", "cpu-c"]),
    {
      message: "t: no link joins devices 'cpu-a' and 'cpu-c' (add one under links:)",
    },
  );
});
