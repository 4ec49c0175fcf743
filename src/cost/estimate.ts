import type { Cluster, Device, Link } from "../cluster/types.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { typeBytes } from "../ir/graph.js";
import { type TensorEncoding, wireBytes } from "../onnx/encoding.js";
import type { CostModel } from "./cost-model.js";

/** Predicted figures of one stage on its device. */
export interface StageEstimate {
  index: number;
  device: string;
  /** Graph node indices it runs (compute nodes). */
  nodes: number[];
  macs: number;
  /** s */
  latency: number;
  /** Peak memory, bytes, and what the device has. */
  memory: number;
  memoryLimit: number;
  /** J per inference. */
  energy: number;
}

/** Predicted transfer between two devices for one inference (all tensors between the pair summed). */
export interface TransferEstimate {
  from: string;
  to: string;
  /** What the transfer carries: "input", "output", or "stage i -> j". */
  what: string;
  bytes: number;
  /** s */
  time: number;
  /** J */
  energy: number;
}

/** Predicted latency, throughput, memory and energy of a split model on a cluster. */
export interface SplitEstimate {
  stages: StageEstimate[];
  transfers: TransferEstimate[];
  /** One inference from input on the input device to output on the output device, s. */
  endToEnd: number;
  /** Inferences per second when pipelined: 1 / the busiest device's or link's time per inference. */
  throughput: number;
  /** What limits throughput: a device or link name. */
  bottleneck: string;
  /** J per inference (stages + transfers). */
  energy: number;
  /** Stages whose peak memory exceeds their device's memory. */
  overMemory: number[];
}

/** The link that joins two devices (a point-to-point link or a shared medium naming both). */
export function linkBetween(cluster: Cluster, a: string, b: string): Link {
  const link = cluster.links.find((l) => l.devices.includes(a) && l.devices.includes(b));
  if (!link) {
    throw new ArgumentError(
      `${cluster.source ?? cluster.name}: no link joins devices '${a}' and '${b}' (add one under links:)`,
      { device: b, file: cluster.source },
      "BAD_CONFIG",
    );
  }
  return link;
}

/**
 * Prices a split: `stageOf[i]` is the stage of graph node i (-1 for Constant nodes), `devices[s]` the device
 * running stage s. Stages run in order for one inference (end-to-end latency sums stages and transfers);
 * pipelined, each device and link is busy for the sum of its stages' or transfers' times, and the busiest
 * sets the throughput. Tensors between stages on the same device cost nothing. Tensors in `encoded` travel
 * at their encoding's size, zero-packed ones at the size their measured share of zeros gives (codec time is
 * not priced here: it is small beside the transfer it shrinks).
 */
export function estimateSplit(
  model: AnalyzedModel,
  cluster: Cluster,
  cost: CostModel,
  stageOf: Int32Array,
  devices: readonly string[],
  encoded?: ReadonlyMap<string, Pick<TensorEncoding, "encoding" | "nonZero">>,
): SplitEstimate {
  const count = devices.length;
  const dev = (name: string): Device => {
    const d = cluster.devices.find((x) => x.name === name);
    if (!d) {
      throw new ArgumentError(
        `unknown device '${name}' (devices: ${cluster.devices.map((x) => x.name).join(", ")})`,
        { device: name },
      );
    }
    return d;
  };
  const { graph, types } = model;
  const members: number[][] = Array.from({ length: count }, () => []);
  for (const node of graph.nodes) {
    const s = stageOf[node.index];
    if (s >= 0 && !node.isConstant) members[s].push(node.index);
  }
  const stages: StageEstimate[] = members.map((nodes, s) => {
    const d = dev(devices[s]);
    return {
      index: s,
      device: d.name,
      nodes,
      macs: nodes.reduce((acc, i) => acc + model.costs[i].macs, 0),
      latency: cost.segmentLatency(d, nodes),
      memory: cost.segmentMemory(d, nodes),
      memoryLimit: d.memory,
      energy: cost.segmentEnergy(d, nodes),
    };
  });

  // Bytes per (from device, to device, what), each tensor sent once per receiving stage.
  const flows = new Map<string, { from: string; to: string; what: string; bytes: number }>();
  const add = (from: string, to: string, what: string, bytes: number) => {
    if (from === to || bytes === 0) return;
    const key = `${from}\u0000${to}\u0000${what}`;
    const f = flows.get(key) ?? { from, to, what, bytes: 0 };
    f.bytes += bytes;
    flows.set(key, f);
  };
  for (const v of graph.values.values()) {
    if (v.kind === "initializer" || v.producer?.isConstant) continue;
    const src = v.producer ? stageOf[v.producer.index] : -1;
    const readers = new Set<number>();
    for (const c of v.consumers) if (!c.isConstant && stageOf[c.index] !== src) readers.add(stageOf[c.index]);
    const e = v.isOutput ? undefined : encoded?.get(v.name);
    const raw = typeBytes(types.get(v.name));
    const bytes = e ? wireBytes(e.encoding, raw / 4, e.nonZero, types.get(v.name)?.shape.at(-1)) : raw;
    for (const r of readers) {
      if (src < 0) add(cluster.inputDevice, devices[r], "input", bytes);
      else add(devices[src], devices[r], `stage ${src} -> ${r}`, bytes);
    }
    if (v.isOutput && src >= 0) add(devices[src], cluster.outputDevice, "output", bytes);
  }
  const transfers: TransferEstimate[] = [...flows.values()].map((f) => {
    const link = linkBetween(cluster, f.from, f.to);
    return { ...f, ...cost.transfer(link, f.bytes) };
  });

  const endToEnd = stages.reduce((s, x) => s + x.latency, 0) + transfers.reduce((s, t) => s + t.time, 0);
  const busy = new Map<string, number>();
  for (const s of stages) busy.set(s.device, (busy.get(s.device) ?? 0) + s.latency);
  for (const t of transfers) {
    const link = linkBetween(cluster, t.from, t.to);
    const name = `link ${link.devices.join("-")}`;
    busy.set(name, (busy.get(name) ?? 0) + t.time);
  }
  let bottleneck = "";
  let worst = 0;
  for (const [name, t] of busy) {
    if (t > worst) {
      worst = t;
      bottleneck = name;
    }
  }
  return {
    stages,
    transfers,
    endToEnd,
    throughput: worst > 0 ? 1 / worst : Number.POSITIVE_INFINITY,
    bottleneck,
    energy: stages.reduce((s, x) => s + x.energy, 0) + transfers.reduce((s, t) => s + t.energy, 0),
    overMemory: stages.filter((s) => s.memory > s.memoryLimit).map((s) => s.index),
  };
}
