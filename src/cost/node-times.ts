import type { AnalyzedModel } from "../ir/analyze.js";
import type { StageOverhead } from "./overhead-probe.js";
import { nodeMask, segmentIO } from "./segment.js";

/**
 * Per-node times of one model on one device, from which any segment's latency follows. Times in s, arrays
 * indexed like `graph.nodes`.
 */
export interface NodeTimes {
  /**
   * Latency of each node as it runs in the whole model: its kernel's time for a node that runs its own kernel
   * (its fusion group's anchor), 0 for nodes fused into another's kernel and for removed nodes.
   */
  latency: Float64Array;
  /** Latency of a fused node when its anchor is in another stage, so it runs as its own kernel; 0 otherwise. */
  standalone: Float64Array;
  /** Anchor of each node's fusion group: itself for kernel nodes, -1 for removed nodes. */
  anchorOf: Int32Array;
  /** 1 for anchors whose kernel runs in a blocked layout (a stage boundary next to them converts layouts). */
  blocked: Uint8Array;
  /** Per-stage cost beyond kernels. */
  overhead: StageOverhead;
}

/**
 * Kernel time of running `nodes` as one stage model, s: the kernel time of every fusion group whose anchor is
 * in the segment plus the standalone time of fused nodes whose anchor is not (a cut separated them, so they
 * run alone). No stage overhead.
 */
export function segmentKernelTime(
  model: AnalyzedModel,
  times: NodeTimes,
  nodes: readonly number[],
  mask = nodeMask(model, nodes),
): number {
  const { latency, standalone, anchorOf } = times;
  let t = 0;
  for (const i of nodes) {
    const a = anchorOf[i];
    if (a === i) t += latency[i];
    else if (a >= 0 && !mask[a]) t += standalone[i];
  }
  return t;
}

/**
 * Latency of running `nodes` as one stage model, s: its kernel time ({@link segmentKernelTime}) plus the
 * stage overhead (fixed, per byte in and out, per byte converted between layouts).
 */
export function segmentTime(model: AnalyzedModel, times: NodeTimes, nodes: readonly number[]): number {
  const mask = nodeMask(model, nodes);
  const { anchorOf, overhead: o } = times;
  const t = segmentKernelTime(model, times, nodes, mask);
  const io = segmentIO(
    model,
    nodes,
    mask,
    (i) => times.blocked[anchorOf[i]] === 1 && mask[anchorOf[i]] === 1,
  );
  return (
    t + o.fixed + o.perByteIn * io.bytesIn + o.perByteOut * io.bytesOut + o.perByteLayout * io.bytesBlocked
  );
}

/** NodeTimes with every time multiplied by `factor` (a device `factor` times slower). */
export function scaleTimes(times: NodeTimes, factor: number): NodeTimes {
  const o = times.overhead;
  return {
    latency: times.latency.map((v) => v * factor),
    standalone: times.standalone.map((v) => v * factor),
    anchorOf: times.anchorOf,
    blocked: times.blocked,
    overhead: {
      fixed: o.fixed * factor,
      perByteIn: o.perByteIn * factor,
      perByteOut: o.perByteOut * factor,
      perByteLayout: o.perByteLayout * factor,
    },
  };
}
