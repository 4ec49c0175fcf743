import type { AnalyzedModel } from "../ir/analyze.js";
import { type ModelIndex, modelIndex } from "./model-index.js";
import type { NodeTimes } from "./node-times.js";

/** Stage latencies of every suffix and prefix of a node list, s (see {@link segmentTimeSweeps}). */
export interface SegmentSweeps {
  /** `suffix[i]`: latency of `nodes[i..n)` as one stage (i = 0..n-1); `suffix[n]` = 0. */
  suffix: Float64Array;
  /** `prefix[j]`: latency of `nodes[0..j)` as one stage (j = 1..n); `prefix[0]` = 0. */
  prefix: Float64Array;
}

/**
 * `segmentTime` of every suffix and every prefix of `nodes` (graph node indices, each once) in two sweeps
 * that add one node at a time, O(nodes + their edges) in all instead of O(nodes^2) calls' worth. Equal to
 * calling `segmentTime` on each (byte counts exactly; kernel sums up to float rounding, since they are
 * accumulated in another order).
 */
export function segmentTimeSweeps(
  model: AnalyzedModel,
  times: NodeTimes,
  nodes: readonly number[],
): SegmentSweeps {
  const n = nodes.length;
  const suffix = new Float64Array(n + 1);
  const prefix = new Float64Array(n + 1);
  const index = modelIndex(model);
  let s = new GrowingSegment(index, times);
  for (let i = n - 1; i >= 0; i--) {
    s.add(nodes[i]);
    suffix[i] = s.time();
  }
  s = new GrowingSegment(index, times);
  for (let j = 1; j <= n; j++) {
    s.add(nodes[j - 1]);
    prefix[j] = s.time();
  }
  return { suffix, prefix };
}

/**
 * A segment that grows one node at a time, keeping the terms of `segmentTime` current: kernel time (a
 * fusion group's kernel once its anchor is in, a fused node's standalone time while it is not), the distinct
 * activations read from outside, those handed on, and those of blocked-layout kernels at the boundary.
 */
class GrowingSegment {
  private readonly inS: Uint8Array;
  /** Nodes counted as blocked: in the segment with their anchor, which runs in a blocked layout. */
  private readonly isBlocked: Uint8Array;
  /** Per activation: nodes of the segment reading it, blocked ones among them, consumers outside it. */
  private readonly readers: Int32Array;
  private readonly blockedReaders: Int32Array;
  private readonly outside: Int32Array;
  /** Per activation produced inside: whether it leaves the segment (a graph output or read outside). */
  private readonly leaves: Uint8Array;
  private readonly members: Map<number, number[]>;
  private kernel = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private bytesBlocked = 0;

  constructor(
    private readonly ix: ModelIndex,
    private readonly times: NodeTimes,
  ) {
    const N = ix.reads.length;
    const T = ix.bytes.length;
    this.inS = new Uint8Array(N);
    this.isBlocked = new Uint8Array(N);
    this.readers = new Int32Array(T);
    this.blockedReaders = new Int32Array(T);
    this.outside = new Int32Array(T);
    this.leaves = new Uint8Array(T);
    this.members = new Map();
    times.anchorOf.forEach((a, i) => {
      if (a < 0 || a === i) return;
      const list = this.members.get(a) ?? [];
      list.push(i);
      this.members.set(a, list);
    });
  }

  /** Latency of the segment as one stage, s (as `segmentTime`). */
  time(): number {
    const o = this.times.overhead;
    return (
      this.kernel +
      o.fixed +
      o.perByteIn * this.bytesIn +
      o.perByteOut * this.bytesOut +
      o.perByteLayout * this.bytesBlocked
    );
  }

  add(x: number): void {
    const { ix, inS } = this;
    const { latency, standalone, anchorOf, blocked } = this.times;
    inS[x] = 1;
    const a = anchorOf[x];
    // Kernel time counts every node, constant or not (as segmentKernelTime does).
    if (a === x) {
      this.kernel += latency[x];
      for (const m of this.members.get(x) ?? []) if (inS[m]) this.kernel -= standalone[m];
    } else if (a >= 0 && !inS[a]) this.kernel += standalone[x];
    if (ix.isConstant[x]) return; // its outputs are weights; segmentIO skips it
    for (const t of ix.writes[x]) {
      const b = ix.bytes[t];
      // Read inside, so far from outside: now made here.
      if (this.readers[t] > 0) this.bytesIn -= b;
      if (this.blockedReaders[t] > 0) this.bytesBlocked -= b;
      let out = 0;
      for (const c of ix.consumers[t]) if (!inS[c]) out++;
      this.outside[t] = out;
      this.leaves[t] = ix.isOutput[t] || out > 0 ? 1 : 0;
      if (this.leaves[t]) this.bytesOut += b;
    }
    for (const t of ix.reads[x]) {
      const b = ix.bytes[t];
      const p = ix.producer[t];
      const made = p >= 0 && inS[p] === 1;
      if (++this.readers[t] === 1 && !made) this.bytesIn += b;
      if (made && --this.outside[t] === 0 && !ix.isOutput[t]) {
        this.leaves[t] = 0;
        this.bytesOut -= b;
        if (this.isBlocked[p]) this.bytesBlocked -= b;
      }
    }
    if (a === x && blocked[x] === 1) {
      this.block(x);
      for (const m of this.members.get(x) ?? []) if (inS[m]) this.block(m);
    } else if (a >= 0 && a !== x && inS[a] && blocked[a] === 1) this.block(x);
  }

  /** Node k (in the segment) now counts as blocked: its boundary reads and its outputs that leave. */
  private block(k: number): void {
    const { ix, inS } = this;
    if (this.isBlocked[k] || ix.isConstant[k]) return;
    this.isBlocked[k] = 1;
    for (const t of ix.reads[k]) {
      const p = ix.producer[t];
      if (++this.blockedReaders[t] === 1 && p >= 0 && !inS[p]) this.bytesBlocked += ix.bytes[t];
    }
    for (const t of ix.writes[k]) if (this.leaves[t]) this.bytesBlocked += ix.bytes[t];
  }
}
