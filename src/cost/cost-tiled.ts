import type { Device, Link } from "../cluster/types.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { typeBytes } from "../ir/graph.js";
import type { CostModel } from "./cost-model.js";
import { type NodeTimes, segmentTime } from "./node-times.js";

/** A cost model that shows the per-node times behind its answers (the cluster cost model does). */
interface WithNodeTimes {
  nodeTimes(device: Device): NodeTimes;
}

function hasNodeTimes(c: CostModel): c is CostModel & WithNodeTimes {
  return typeof (c as Partial<WithNodeTimes>).nodeTimes === "function";
}

/**
 * Prices a tiled model (see `tileModel`) from the cost model of the model it came from, so a measured
 * profile of the original still prices its tiles: a layer copy costs the original layer's latency times the
 * share of its output rows it computes (halo included), fused into the copy of its original's fusion anchor
 * as the original was; a Slice or Concat the tiling added copies its output at the device's memory bandwidth
 * and, where it reads or feeds a layer onnxruntime runs in its blocked layout, pays the conversion of those
 * bytes (onnxruntime reorders around every such Slice: on ResNet-50's tile stages here the reorders and slices
 * took 1.0-2.2 ms of a 13-19 ms stage); a crop the tiling made a depthwise Conv stays in the layout it reads
 * and reads its kernel's rows per row it writes. A stage pays the base model's per-stage overhead for its own inputs
 * and outputs. With a base model that shows no node times: each copy from the original's latency, each added
 * node its copy time, and a stage the original's whole-model overhead. Memory of a tile stage is that of the
 * original layers it copies (an upper bound: a tile holds fewer rows); energy scales with time at the
 * original's power.
 */
export class TiledCostModel implements CostModel {
  private readonly originIndex: Int32Array;
  private readonly share: Float64Array;
  private readonly overhead = new Map<string, number>();
  private readonly times = new WeakMap<Device, NodeTimes>();

  constructor(
    private readonly base: CostModel,
    private readonly original: AnalyzedModel,
    private readonly tiled: AnalyzedModel,
    origin: ReadonlyMap<string, { node: string; share: number }>,
  ) {
    const byName = new Map(original.graph.nodes.map((n) => [n.name, n.index]));
    this.originIndex = new Int32Array(tiled.graph.nodes.length).fill(-1);
    this.share = new Float64Array(tiled.graph.nodes.length).fill(1);
    for (const n of tiled.graph.nodes) {
      const o = origin.get(n.name);
      const i = byName.get(o?.node ?? n.name);
      if (i === undefined) continue;
      this.originIndex[n.index] = i;
      this.share[n.index] = o?.share ?? 1;
    }
  }

  /** The original's fixed cost of one stage on the device, s (its whole-model latency minus its nodes'). */
  private stageOverhead(device: Device): number {
    let v = this.overhead.get(device.name);
    if (v === undefined) {
      const all = this.original.graph.nodes.filter((n) => !n.isConstant).map((n) => n.index);
      const lat = this.base.nodeLatencies(device);
      const sum = all.reduce((s, i) => s + lat[i], 0);
      v = Math.max(0, this.base.segmentLatency(device, all) - sum);
      this.overhead.set(device.name, v);
    }
    return v;
  }

  /** Node times of the tiled model on the device, from the base's, when the base shows them. */
  private tiledTimes(device: Device): NodeTimes | undefined {
    if (!hasNodeTimes(this.base)) return undefined;
    const known = this.times.get(device);
    if (known) return known;
    const t = this.base.nodeTimes(device);
    const { graph, types, costs } = this.tiled;
    const N = graph.nodes.length;
    const latency = new Float64Array(N);
    const standalone = new Float64Array(N);
    const anchorOf = new Int32Array(N).fill(-1);
    const blocked = new Uint8Array(N);
    const byName = new Map(graph.nodes.map((n) => [n.name, n.index]));
    const orig = this.original.graph.nodes;
    for (const n of graph.nodes) {
      const o = this.originIndex[n.index];
      if (n.isConstant || o < 0) continue;
      const share = this.share[n.index];
      latency[n.index] = t.latency[o] * share;
      standalone[n.index] = t.standalone[o] * share;
      const a = t.anchorOf[o];
      if (a < 0) continue; // removed by onnxruntime's optimizer, as in the original
      if (a === o) {
        anchorOf[n.index] = n.index;
        blocked[n.index] = t.blocked[o];
        continue;
      }
      // The anchor's copy in the same tile (copies are named `<original>.tile<j>`), or the anchor itself.
      const suffix = n.name.slice(orig[o].name.length);
      const copy = byName.get(`${orig[a].name}${suffix}`) ?? byName.get(orig[a].name);
      anchorOf[n.index] = copy ?? n.index;
      if (copy === undefined) latency[n.index] = standalone[n.index];
    }
    const isBlocked = (i: number) => anchorOf[i] >= 0 && blocked[anchorOf[i]] === 1;
    for (const n of graph.nodes) {
      if (n.isConstant || this.originIndex[n.index] >= 0) continue;
      // A crop the tiling made a depthwise Conv runs in the layout of the layer it reads, no conversion; each
      // row it writes reads its kernel's rows.
      const src = graph.values.get(n.inputs[0])?.producer;
      if (n.op === "Conv" && src && isBlocked(src.index)) {
        const kh = types.get(n.inputs[1])?.shape[2] ?? 1;
        latency[n.index] = ((kh + 1) * costs[n.index].outputBytes) / device.memoryBandwidth;
        anchorOf[n.index] = n.index;
        blocked[n.index] = 1;
        continue;
      }
      let layout = 0;
      for (const x of n.inputs) {
        const p = graph.values.get(x)?.producer;
        if (p && !graph.isWeight(x) && isBlocked(p.index)) layout += typeBytes(types.get(x));
      }
      const out = graph.values.get(n.outputs[0]);
      if (out?.consumers.some((c) => isBlocked(c.index))) layout += costs[n.index].outputBytes;
      latency[n.index] =
        costs[n.index].outputBytes / device.memoryBandwidth + layout * t.overhead.perByteLayout;
      anchorOf[n.index] = n.index;
    }
    const times: NodeTimes = { latency, standalone, anchorOf, blocked, overhead: t.overhead };
    this.times.set(device, times);
    return times;
  }

  nodeLatencies(device: Device): Float64Array {
    const times = this.tiledTimes(device);
    if (times) return times.latency;
    const lat = this.base.nodeLatencies(device);
    const out = new Float64Array(this.tiled.graph.nodes.length);
    for (const n of this.tiled.graph.nodes) {
      if (n.isConstant) continue;
      const o = this.originIndex[n.index];
      out[n.index] =
        o >= 0
          ? lat[o] * this.share[n.index]
          : this.tiled.costs[n.index].outputBytes / device.memoryBandwidth;
    }
    return out;
  }

  segmentLatency(device: Device, nodes: readonly number[]): number {
    if (nodes.length === 0) return 0;
    const times = this.tiledTimes(device);
    if (times) return segmentTime(this.tiled, times, nodes);
    const lat = this.nodeLatencies(device);
    return nodes.reduce((s, i) => s + lat[i], 0) + this.stageOverhead(device);
  }

  segmentEnergy(device: Device, nodes: readonly number[]): number {
    const all = this.original.graph.nodes.filter((n) => !n.isConstant).map((n) => n.index);
    const power =
      this.base.segmentEnergy(device, all) / Math.max(1e-12, this.base.segmentLatency(device, all));
    return power * this.segmentLatency(device, nodes);
  }

  segmentMemory(device: Device, nodes: readonly number[]): number {
    const originals = new Set<number>();
    for (const i of nodes) if (this.originIndex[i] >= 0) originals.add(this.originIndex[i]);
    return this.base.segmentMemory(
      device,
      [...originals].sort((a, b) => a - b),
    );
  }

  transfer(link: Link, bytes: number): { time: number; energy: number } {
    return this.base.transfer(link, bytes);
  }
}
