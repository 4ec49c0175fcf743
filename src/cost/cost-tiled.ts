import type { Device, Link } from "../cluster/types.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { CostModel } from "./cost-model.js";

/**
 * Prices a tiled model (see `tileModel`) from the cost model of the model it came from, so a measured
 * profile of the original still prices its tiles: a layer copy costs the original layer's latency times the
 * share of its output rows it computes (halo included); a Slice or join copies its output once at the
 * device's memory bandwidth; a stage adds the original's per-stage overhead. Memory of a tile stage is that
 * of the original layers it copies (an upper bound: a tile holds fewer rows); energy scales with time at the
 * original's power.
 */
export class TiledCostModel implements CostModel {
  private readonly originIndex: Int32Array;
  private readonly share: Float64Array;
  private readonly overhead = new Map<string, number>();

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

  nodeLatencies(device: Device): Float64Array {
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
