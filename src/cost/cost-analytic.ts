import type { Device } from "../cluster/types.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { Attrs, type Node } from "../ir/graph.js";
import type { NodeTimes } from "./node-times.js";
import type { StageOverhead } from "./overhead-probe.js";
import { median } from "./stats.js";

/**
 * Calibration of the analytic (roofline) model: how close to its nominal throughput and bandwidth a device
 * runs each class of operator, and the fixed cost per node. Efficiencies are dimensionless (measured rate /
 * nominal rate) and carry over to other devices; times are for the reference device and scale with its
 * MAC rate.
 */
export interface AnalyticCalibration {
  /** Compute efficiency by operator class (op, or "Conv:grouped" for grouped/depthwise convolutions). */
  compute: Record<string, number>;
  /** Memory efficiency by operator class, for operators without MACs. */
  memory: Record<string, number>;
  /** Fallbacks for classes the calibration did not see. */
  defaultCompute: number;
  defaultMemory: number;
  /** Fixed cost per node on the reference device, s. */
  perNode: number;
  /** Stage overhead on the reference device. */
  overhead: StageOverhead;
  /** Nominal float32 MAC/s of the reference device (times scale by reference / target). */
  referenceMacsPerSecond: number;
  /** Fusion groups seen in the calibration profile (anchor per node), when calibrated from one. */
  anchorOf?: Int32Array;
  /** Anchors whose kernel ran in a blocked layout in the calibration profile. */
  blocked?: Uint8Array;
}

/** Uncalibrated defaults: typical fractions of peak for CPU inference (documented guesses, not measurements). */
export const DEFAULT_CALIBRATION: Omit<AnalyticCalibration, "referenceMacsPerSecond"> = {
  compute: { Conv: 0.5, "Conv:grouped": 0.1, Gemm: 0.6, MatMul: 0.6, ConvTranspose: 0.4 },
  memory: {},
  defaultCompute: 0.4,
  defaultMemory: 0.5,
  perNode: 5e-6,
  overhead: { fixed: 2e-5, perByteIn: 0, perByteOut: 0, perByteLayout: 0 },
};

/** Operator class used to key efficiencies: grouped (incl. depthwise) convolutions run far below dense ones. */
export function opClass(node: Node): string {
  if ((node.op === "Conv" || node.op === "ConvTranspose") && new Attrs(node).int("group", 1) > 1)
    return `${node.op}:grouped`;
  return node.op;
}

function rate(device: Device, model: AnalyzedModel, node: Node): number {
  const dtype = model.types.get(node.outputs[0] ?? "")?.dtype;
  return (dtype !== undefined ? device.macsPerSecond[dtype] : undefined) ?? device.macsPerSecond.float32;
}

/** Work of a fusion group (or a lone node): MACs, and bytes moved in and out of memory. */
function groupWork(model: AnalyzedModel, members: readonly number[]): { macs: number; bytes: number } {
  let macs = 0;
  for (const i of members) macs += model.costs[i].macs;
  // Fused intermediates stay in registers/cache: count what the anchor reads and the last member writes.
  const first = model.costs[members[0]];
  const last = model.costs[members[members.length - 1]];
  return { macs, bytes: first.bytesRead + last.bytesWritten };
}

/**
 * Calibrates the analytic model from measured node times on a reference device: per operator class, the median
 * over its kernels of (nominal time / measured time - per-node cost), compute-bound for classes with MACs and
 * memory-bound otherwise; the per-node cost is the smallest measured kernel time (a kernel doing almost nothing),
 * at most 5% of the median kernel time.
 */
export function calibrateAnalytic(
  model: AnalyzedModel,
  times: NodeTimes,
  reference: Device,
): AnalyticCalibration {
  const groups = fusionGroups(times.anchorOf);
  const kernelTimes = [...groups.keys()].map((a) => times.latency[a]).filter((t) => t > 0);
  // A model without near-empty kernels says little about the fixed cost: cap it at 5% of the median kernel.
  const perNode =
    kernelTimes.length > 0
      ? Math.min(Math.min(...kernelTimes), 0.05 * median(kernelTimes))
      : DEFAULT_CALIBRATION.perNode;
  const comp = new Map<string, number[]>();
  const mem = new Map<string, number[]>();
  for (const [anchor, members] of groups) {
    const t = times.latency[anchor] - perNode;
    if (!(t > perNode)) continue; // too small to say anything about throughput
    const node = model.graph.nodes[anchor];
    const { macs, bytes } = groupWork(model, members);
    const cls = opClass(node);
    if (macs > 0) push(comp, cls, macs / rate(reference, model, node) / t);
    else if (bytes > 0) push(mem, cls, bytes / reference.memoryBandwidth / t);
  }
  const compute = Object.fromEntries([...comp].map(([k, v]) => [k, median(v)]));
  const memory = Object.fromEntries([...mem].map(([k, v]) => [k, median(v)]));
  return {
    compute,
    memory,
    defaultCompute: comp.size > 0 ? median([...comp.values()].flat()) : DEFAULT_CALIBRATION.defaultCompute,
    defaultMemory: mem.size > 0 ? median([...mem.values()].flat()) : DEFAULT_CALIBRATION.defaultMemory,
    perNode,
    overhead: { ...times.overhead },
    referenceMacsPerSecond: reference.macsPerSecond.float32,
    anchorOf: times.anchorOf,
    blocked: times.blocked,
  };
}

function push(m: Map<string, number[]>, k: string, v: number): void {
  const list = m.get(k) ?? [];
  list.push(v);
  m.set(k, list);
}

/** Members of each fusion group by anchor, in graph order (anchor first). */
function fusionGroups(anchorOf: Int32Array): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  anchorOf.forEach((a, i) => {
    if (a < 0) return;
    const list = groups.get(a) ?? [];
    list.push(i);
    groups.set(a, list);
  });
  for (const [a, m] of groups) groups.set(a, [a, ...m.filter((i) => i !== a)]);
  return groups;
}

/**
 * Node times on a device from the roofline: per kernel, `perNode + max(MACs / (MAC/s * compute efficiency),
 * bytes / (bandwidth * memory efficiency))`, with the per-node cost and stage overhead scaled from the
 * reference device by the ratio of nominal MAC rates. Fusion groups follow the calibration profile (a
 * separated fused node costs its own roofline time); without a calibration, every node is its own kernel and
 * the documented defaults apply.
 */
export function analyticTimes(
  model: AnalyzedModel,
  device: Device,
  calibration: AnalyticCalibration = {
    ...DEFAULT_CALIBRATION,
    referenceMacsPerSecond: device.macsPerSecond.float32,
  },
): NodeTimes {
  const { graph } = model;
  const n = graph.nodes.length;
  const scale = calibration.referenceMacsPerSecond / device.macsPerSecond.float32;
  const anchorOf =
    calibration.anchorOf && calibration.anchorOf.length === n
      ? calibration.anchorOf
      : Int32Array.from(graph.nodes, (nd) => (nd.isConstant ? -1 : nd.index));
  const roof = (members: readonly number[]): number => {
    const node = graph.nodes[members[0]];
    const { macs, bytes } = groupWork(model, members);
    const cls = opClass(node);
    const ce = calibration.compute[cls] ?? calibration.defaultCompute;
    const me = calibration.memory[cls] ?? calibration.defaultMemory;
    const compute = macs > 0 ? macs / (rate(device, model, node) * ce) : 0;
    const memory = bytes / (device.memoryBandwidth * me);
    return calibration.perNode * scale + Math.max(compute, memory);
  };
  const latency = new Float64Array(n);
  const standalone = new Float64Array(n);
  for (const [anchor, members] of fusionGroups(anchorOf)) {
    latency[anchor] = roof(members);
    for (const m of members) if (m !== anchor) standalone[m] = roof([m]);
  }
  const o = calibration.overhead;
  const blocked =
    calibration.blocked && calibration.blocked.length === n ? calibration.blocked : new Uint8Array(n);
  return {
    latency,
    standalone,
    anchorOf,
    blocked,
    overhead: {
      fixed: o.fixed * scale,
      perByteIn: o.perByteIn * scale,
      perByteOut: o.perByteOut * scale,
      perByteLayout: o.perByteLayout * scale,
    },
  };
}
