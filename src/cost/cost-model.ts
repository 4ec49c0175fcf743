import type { Device, Link } from "../cluster/types.js";

/**
 * Prices work on devices and transfers on links. Segments are sets of node indices of the analysed graph
 * (`graph.nodes[i]`), normally a contiguous run of the partition order. Times in s, energy in J, memory in bytes.
 * Implementations: measured (from onnxruntime profiles) and analytic (roofline); a cluster can mix them.
 */
export interface CostModel {
  /** Latency of each node on the device, s, indexed like `graph.nodes` (includes per-node overhead). */
  nodeLatencies(device: Device): Float64Array;
  /** Latency of running `nodes` as one stage model on the device, s (per-stage fixed overhead included). */
  segmentLatency(device: Device, nodes: readonly number[]): number;
  /** Energy of running `nodes` on the device, J (active power x busy time). */
  segmentEnergy(device: Device, nodes: readonly number[]): number;
  /** Peak memory of running `nodes` on the device, bytes: weights + largest live activation set + runtime overhead. */
  segmentMemory(device: Device, nodes: readonly number[]): number;
  /** Time (s) and energy (J) to send `bytes` over a link: latency + bytes / bandwidth. */
  transfer(link: Link, bytes: number): { time: number; energy: number };
  /**
   * Optional fast path: `segmentLatency` of every suffix `nodes[i..n)` (`suffix[i]`, 0 at n) and every prefix
   * `nodes[0..j)` (`prefix[j]`, 0 at 0) of a node list, s, equal to calling it on each up to float rounding.
   * Planners need exactly these to fit stage costs; without it they make 2n calls.
   */
  segmentLatencySweeps?(
    device: Device,
    nodes: readonly number[],
  ): { suffix: Float64Array; prefix: Float64Array };
  /**
   * Optional: a key such that devices with equal keys get equal `segmentMemory` for every segment, so callers
   * can share memory figures between them.
   */
  memoryKey?(device: Device): string;
}
