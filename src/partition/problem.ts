import type { Cluster, CoreCluster, Device, Link } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { typeBytes } from "../ir/graph.js";
import type { PartitionOrder } from "./order.js";

/** A device as the planner sees it (SI units). */
export interface ProblemDevice {
  name: string;
  /** Active power while running a stage, W. */
  power: number;
  /** Memory available to a stage, bytes. */
  memory: number;
  /** Nominal float32 throughput, MAC/s (for compute-proportional splits and bounds). */
  macsPerSecond: number;
  /** Memory bandwidth, bytes/s (intra-device transfers between core clusters). */
  memoryBandwidth: number;
  /**
   * Symmetry class: devices of one type are interchangeable (same figures, same latencies and memory fits,
   * and swapping them maps the links onto themselves), so planners try one member per type.
   */
  type: number;
  coreClusters?: readonly CoreCluster[];
  /**
   * Host group (index), when the device shares its machine with other devices of the cluster, and the factor
   * its compute takes longer while another device of that host computes too (>= 1; pipelined throughput only).
   */
  host?: number;
  coRun?: number;
  /** CPU time per byte the device receives or sends, s/byte (adds to a stage's pipeline period). */
  transferCpu?: number;
  /**
   * CPU time per inference the coordinator takes from the device while it computes beside another device of
   * its host, s (adds to the period then, like the co-run factor; only with `host`).
   */
  coordinatorCpu?: number;
}

/** A link as the planner sees it: a transfer of b bytes takes `latency + b * secondsPerByte`. */
export interface ProblemLink {
  /** Readable name ("a-b", or "wifi(a,b,c)" for a shared medium). */
  name: string;
  /** Device indices it joins; more than two for a shared medium (every transfer on it shares it). */
  devices: readonly number[];
  /** Fixed time per transfer, s. */
  latency: number;
  /** s/byte (1 / bandwidth). */
  secondsPerByte: number;
  /** J/byte. */
  joulesPerByte: number;
}

/**
 * An activation in position terms: produced at `def` (-1: a graph input, held on the input device), last
 * needed at `lastUse` (`n` for graph outputs, needed on the output device). It crosses boundary b
 * (0..n) when `def < b <= lastUse`; boundary 0 is the input transfer, boundary n the output transfer.
 */
export interface ProblemTensor {
  name: string;
  bytes: number;
  def: number;
  lastUse: number;
  /** Positions reading it (`n` for a graph output), for pricing non-contiguous stages. */
  uses: readonly number[];
}

/**
 * The pure planning problem: `n` positions (compute nodes in partition order) to cut into contiguous stages,
 * each on its own device. Every planner, baseline and the brute force work only on this, so tests can make
 * problems directly. Times in s, energy in J, memory in bytes.
 *
 * Stage time of positions [i, j) on device d is `prefix[d][j] - prefix[d][i] + startCost[d][i] + endCost[d][j]`:
 * the node latencies plus what depends on where the stage starts (fixed overhead, fused nodes cut off from
 * their kernel, input copying) and ends.
 */
export interface PlanProblem {
  n: number;
  devices: readonly ProblemDevice[];
  links: readonly ProblemLink[];
  /** `linkIndex[a * D + b]`: the link used between devices a and b (the fastest when several), -1 when none. */
  linkIndex: Int32Array;
  /** Device holding the graph inputs, and device that needs the outputs (indices). */
  inputDevice: number;
  outputDevice: number;
  /** Per device, n+1 prefix sums of position latencies, s. */
  prefix: readonly Float64Array[];
  /** Per device, cost of a stage starting at position i (index 0..n), s; includes the per-stage fixed overhead. */
  startCost: readonly Float64Array[];
  /** Per device, cost of a stage ending at boundary j (index 0..n), s. */
  endCost: readonly Float64Array[];
  /** MACs per position. */
  macs: Float64Array;
  /** Bytes crossing each boundary 0..n (0: input transfer, n: output transfer), relay model. */
  cutBytes: Float64Array;
  /**
   * Graph inputs the input device encodes and sends on (the encoder stage there, set by `encodedProblem`):
   * `encode`, the encode's time on the input device, which `startCost[d][0]` of every other device holds so a
   * request's latency pays it; `feed`, the input device's time per request it sends to another device (that
   * encode, and its transfer CPU for receiving the inputs as they are and sending them encoded), s. A first stage
   * on other devices runs no faster than the input device feeds it, and an input device that also runs a
   * replica of that stage has only what the feeding leaves (see `priceGroup`).
   */
  inputFeed?: { encode: number; feed: number };
  tensors: readonly ProblemTensor[];
  /** Per device, per start position i: the largest end j such that [i, j) fits in memory (i when nothing does). */
  memEnd: readonly Int32Array[];
  /** Memory of running positions [start, end) on device d, bytes. */
  memory(d: number, start: number, end: number): number;
  /** Time and memory of an arbitrary (not necessarily contiguous) set of positions as one stage on d. */
  setCost(d: number, positions: readonly number[]): { time: number; memory: number };
}

/** Stage time of positions [i, j) on device d, s. */
export function stageTime(p: PlanProblem, d: number, i: number, j: number): number {
  return p.prefix[d][j] - p.prefix[d][i] + p.startCost[d][i] + p.endCost[d][j];
}

/**
 * The pipeline period of a stage starting at boundary b on device d whose time (with its pipeline terms) is
 * `t`: a first stage the input device feeds (`inputFeed`) leaves out the input's encode, which is the input
 * device's work, and runs no faster than the feed; any other stage's period is its time.
 */
export function fedPeriod(p: PlanProblem, d: number, b: number, t: number): number {
  const f = p.inputFeed;
  return b === 0 && f !== undefined && feedsFirstStage(p, d) ? Math.max(t - f.encode, f.feed, 0) : t;
}

/** Whether the input device feeds a first stage run on device d (`inputFeed`, d another device). */
export function feedsFirstStage(p: PlanProblem, d: number): boolean {
  return p.inputFeed !== undefined && p.inputFeed.feed > 0 && d !== p.inputDevice;
}

/** Link between devices a and b (index into `p.links`), -1 when none or when a === b. */
export function linkOf(p: PlanProblem, a: number, b: number): number {
  return a === b ? -1 : p.linkIndex[a * p.devices.length + b];
}

/** Time and energy of sending `bytes` over link l (0 for no bytes). */
export function transferCost(p: PlanProblem, l: number, bytes: number): { time: number; energy: number } {
  if (bytes <= 0) return { time: 0, energy: 0 };
  const k = p.links[l];
  return { time: k.latency + bytes * k.secondsPerByte, energy: bytes * k.joulesPerByte };
}

/** Options for {@link buildProblem}. */
export interface BuildProblemOptions {
  /** Check the separable stage-time fit against `segmentLatency` on this many random segments (default 0). */
  checkSegments?: number;
}

/**
 * Builds the planning problem of a model on a cluster: position latencies from `nodeLatencies` mapped through
 * the order, start/end stage costs fitted from `segmentLatency` (exact for segments [i, n) and [0, j), and for
 * any segment when the cost model is additive plus per-boundary terms), memory fits from `segmentMemory`
 * (assumed monotone: a segment never needs less than a segment inside it), link costs from `transfer`
 * (assumed affine in bytes), and boundary bytes from the activations' life spans.
 */
export function buildProblem(
  model: AnalyzedModel,
  order: PartitionOrder,
  cluster: Cluster,
  cost: CostModel,
): PlanProblem {
  const n = order.nodes.length;
  if (n === 0) throw new ArgumentError("the model has no compute nodes to plan", { field: "model" });
  const D = cluster.devices.length;
  const devIndex = new Map(cluster.devices.map((d, i) => [d.name, i]));
  const inputDevice = devIndex.get(cluster.inputDevice);
  const outputDevice = devIndex.get(cluster.outputDevice);
  if (inputDevice === undefined || outputDevice === undefined) {
    throw new ArgumentError(`cluster ${cluster.name}: input or output device is not one of its devices`, {
      field: "inputDevice",
    });
  }
  const nodesOf = (start: number, end: number) => order.nodes.slice(start, end) as number[];

  // Per-device figures, computed once per group of devices with identical descriptions.
  const sig = cluster.devices.map(deviceSignature);
  const firstWithSig = new Map<string, number>();
  const prefix: Float64Array[] = [];
  const startCost: Float64Array[] = [];
  const endCost: Float64Array[] = [];
  const memEnd: Int32Array[] = [];
  // Segment memory is shared by devices the cost model says price memory alike (else by signature).
  const memClassOf = new Map<string, number>();
  const memClass = cluster.devices.map((dev, d) => {
    const key = cost.memoryKey ? `key:${cost.memoryKey(dev)}` : `sig:${sig[d]}`;
    let c = memClassOf.get(key);
    if (c === undefined) {
      c = memClassOf.size;
      memClassOf.set(key, c);
    }
    return c;
  });
  const memCache = new Map<number, number>();
  const memoryOf = (d: number, start: number, end: number): number => {
    const key = (memClass[d] * (n + 1) + start) * (n + 1) + end;
    let m = memCache.get(key);
    if (m === undefined) {
      m = cost.segmentMemory(cluster.devices[d], nodesOf(start, end));
      memCache.set(key, m);
    }
    return m;
  };
  for (let d = 0; d < D; d++) {
    const dev = cluster.devices[d];
    const lat = cost.nodeLatencies(dev);
    // Share figures only when the cost model agrees (it may price same-looking devices differently).
    let same = firstWithSig.get(sig[d]);
    if (same !== undefined && !sameArray(lat, cost.nodeLatencies(cluster.devices[same]))) {
      sig[d] = `${sig[d]}#${d}`;
      same = undefined;
    }
    if (same !== undefined) {
      prefix.push(prefix[same]);
      startCost.push(startCost[same]);
      endCost.push(endCost[same]);
      memEnd.push(memEnd[same]);
      continue;
    }
    firstWithSig.set(sig[d], d);
    const pre = new Float64Array(n + 1);
    for (let p = 0; p < n; p++) pre[p + 1] = pre[p] + lat[order.nodes[p]];
    const { A, B } = fitStageCosts(cost, dev, order.nodes, pre);
    prefix.push(pre);
    startCost.push(A);
    endCost.push(B);
    // Memory fits by two pointers (fits are monotone: memEnd[i] never decreases with i).
    const cap = dev.memory;
    const ends = new Int32Array(n);
    let j = 0;
    for (let i = 0; i < n; i++) {
      j = Math.max(j, i);
      while (j < n && memoryOf(d, i, j + 1) <= cap) j++;
      ends[i] = j;
    }
    memEnd.push(ends);
  }

  const tensors = problemTensors(model, order);
  const cutBytes = boundaryBytes(n, tensors);
  const macs = Float64Array.from(order.nodes, (i) => model.costs[i].macs);

  const { links, linkIndex } = problemLinks(cluster, devIndex, cost);
  const hosts = sharedHosts(cluster);
  const devices: ProblemDevice[] = cluster.devices.map((d) => ({
    name: d.name,
    power: d.activePower,
    memory: d.memory,
    macsPerSecond: d.macsPerSecond.float32,
    memoryBandwidth: d.memoryBandwidth,
    type: 0,
    ...(d.coreClusters && d.coreClusters.length > 0 ? { coreClusters: d.coreClusters } : {}),
    ...(d.host !== undefined && hosts.has(d.host)
      ? {
          host: hosts.get(d.host),
          coRun: d.coRunSlowdown ?? 1,
          ...(d.coordinatorCpu ? { coordinatorCpu: d.coordinatorCpu } : {}),
        }
      : {}),
    ...(d.transferCpu ? { transferCpu: d.transferCpu } : {}),
  }));
  const problem: PlanProblem = {
    n,
    devices,
    links,
    linkIndex,
    inputDevice,
    outputDevice,
    prefix,
    startCost,
    endCost,
    macs,
    cutBytes,
    tensors,
    memEnd,
    memory: memoryOf,
    setCost(d, positions) {
      const nodes = positions.map((p) => order.nodes[p]);
      return {
        time: cost.segmentLatency(cluster.devices[d], nodes),
        memory: cost.segmentMemory(cluster.devices[d], nodes),
      };
    },
  };
  assignDeviceTypes(problem, sig);
  return problem;
}

/**
 * Activations in position terms: every graph input or compute-node output that a compute node reads or that
 * is a graph output (weights and Constant outputs are never sent).
 */
export function problemTensors(model: AnalyzedModel, order: PartitionOrder): ProblemTensor[] {
  const n = order.nodes.length;
  const tensors: ProblemTensor[] = [];
  for (const v of model.graph.values.values()) {
    if (v.kind === "initializer" || v.producer?.isConstant) continue;
    const def = v.producer ? order.position[v.producer.index] : -1;
    const uses = [...new Set(v.consumers.filter((c) => !c.isConstant).map((c) => order.position[c.index]))];
    if (v.isOutput) uses.push(n);
    uses.sort((a, b) => a - b);
    const lastUse = uses.length > 0 ? uses[uses.length - 1] : -1;
    if (lastUse <= def) continue;
    tensors.push({ name: v.name, bytes: typeBytes(model.types.get(v.name)), def, lastUse, uses });
  }
  return tensors;
}

/** Bytes crossing each boundary 0..n of the tensors' spans, in O(n + tensors). */
export function boundaryBytes(n: number, tensors: readonly ProblemTensor[]): Float64Array {
  const diff = new Float64Array(n + 2);
  for (const t of tensors) {
    if (t.lastUse <= t.def) continue;
    diff[t.def + 1] += t.bytes;
    diff[t.lastUse + 1] -= t.bytes;
  }
  const out = new Float64Array(n + 1);
  let acc = 0;
  for (let b = 0; b <= n; b++) {
    acc += diff[b];
    out[b] = acc;
  }
  return out;
}

/**
 * Start and end costs of stages on a device, s: `A[i]` from the segments [i, n) (with `B[n]` = 0), then
 * `B[j]` from the segments [0, j), each the segment's latency less its node latencies (`pre`, prefix sums).
 * Uses the cost model's sweeps when it has them (O(n) in all), else 2n `segmentLatency` calls.
 */
function fitStageCosts(
  cost: CostModel,
  dev: Device,
  nodes: readonly number[],
  pre: Float64Array,
): { A: Float64Array; B: Float64Array } {
  const n = nodes.length;
  const A = new Float64Array(n + 1);
  const B = new Float64Array(n + 1);
  const sweeps = cost.segmentLatencySweeps?.(dev, nodes);
  const suffix = (i: number) => (sweeps ? sweeps.suffix[i] : cost.segmentLatency(dev, nodes.slice(i, n)));
  const prefix = (j: number) => (sweeps ? sweeps.prefix[j] : cost.segmentLatency(dev, nodes.slice(0, j)));
  for (let i = 0; i < n; i++) A[i] = suffix(i) - (pre[n] - pre[i]);
  for (let j = 1; j < n; j++) B[j] = prefix(j) - (pre[j] - pre[0]) - A[0];
  return { A, B };
}

/** Index of every host named by at least two devices of the cluster. */
function sharedHosts(cluster: Cluster): Map<string, number> {
  const count = new Map<string, number>();
  for (const d of cluster.devices) if (d.host !== undefined) count.set(d.host, (count.get(d.host) ?? 0) + 1);
  const out = new Map<string, number>();
  for (const [h, c] of count) if (c > 1) out.set(h, out.size);
  return out;
}

/**
 * Co-run factor of each stage of a plan whose stages run on `devices`: a device's `coRun` when another
 * stage's device shares its host (they compute at the same time in a pipeline), else 1.
 */
export function coRunFactors(p: PlanProblem, devices: readonly number[]): number[] {
  const beside = coRunning(p, devices);
  return devices.map((d, k) => (beside[k] ? Math.max(1, p.devices[d].coRun ?? 1) : 1));
}

/** For each stage of a plan whose stages run on `devices`: whether another stage's device shares its host. */
export function coRunning(p: PlanProblem, devices: readonly number[]): boolean[] {
  return devices.map((d, k) => {
    const h = p.devices[d].host;
    return h !== undefined && devices.some((e, m) => m !== k && p.devices[e].host === h);
  });
}

/**
 * True when a stage's pipeline period differs from its time: some device slows down beside another of its
 * host, or spends CPU time on the bytes it moves.
 */
export function hasPipelineCosts(p: PlanProblem): boolean {
  return p.devices.some(
    (d) =>
      (d.host !== undefined && ((d.coRun ?? 1) > 1 || (d.coordinatorCpu ?? 0) > 0)) ||
      (d.transferCpu ?? 0) > 0,
  );
}

/**
 * The problem as a pipeline sees it when every device with a co-run factor runs beside another of its host:
 * stage times of such devices multiplied by their factor, plus the CPU time of the bytes crossing the stage's
 * two boundaries (latency and energy included: use it to search for throughput, then price the plan found
 * on the real problem).
 */
export function pipelinedProblem(p: PlanProblem): PlanProblem {
  const f = p.devices.map((d) => (d.host !== undefined ? Math.max(1, d.coRun ?? 1) : 1));
  const io = p.devices.map((d) => d.transferCpu ?? 0);
  const coord = p.devices.map((d) => (d.host !== undefined ? (d.coordinatorCpu ?? 0) : 0));
  // `once`: the coordinator's time is a constant per stage, charged with the stage's start.
  const adjust = (arrs: readonly Float64Array[], withIo: boolean, once: boolean) =>
    arrs.map((a, d) =>
      f[d] === 1 && (!withIo || io[d] === 0) && (!once || coord[d] === 0)
        ? a
        : a.map((x, b) => x * f[d] + (withIo ? p.cutBytes[b] * io[d] : 0) + (once ? coord[d] : 0)),
    );
  return {
    ...p,
    prefix: adjust(p.prefix, false, false),
    startCost: adjust(p.startCost, true, true),
    endCost: adjust(p.endCost, true, false),
    setCost(d, positions) {
      const c = p.setCost(d, positions);
      return { time: c.time * f[d], memory: c.memory };
    },
  };
}

/** Everything that makes two devices' costs equal (not the name). */
function deviceSignature(d: Device): string {
  const { name: _name, endpoint: _e, cpus: _c, cpuShare, threads, ...rest } = d;
  return JSON.stringify({ ...rest, cpuShare, threads });
}

/** Links in problem form, each pair's fastest link, transfer costs taken from the cost model. */
function problemLinks(
  cluster: Cluster,
  devIndex: Map<string, number>,
  cost: CostModel,
): { links: ProblemLink[]; linkIndex: Int32Array } {
  const D = cluster.devices.length;
  const links = cluster.links.map((l: Link): ProblemLink => {
    // Two probes give the affine law (robust to a cost model that charges nothing for 0 bytes).
    const a = cost.transfer(l, 1e6);
    const b = cost.transfer(l, 2e6);
    const secondsPerByte = (b.time - a.time) / 1e6;
    const joulesPerByte = (b.energy - a.energy) / 1e6;
    return {
      name: l.devices.length === 2 ? l.devices.join("-") : `${l.kind}(${l.devices.join(",")})`,
      devices: l.devices.map((name) => devIndex.get(name)!),
      latency: Math.max(0, a.time - 1e6 * secondsPerByte),
      secondsPerByte,
      joulesPerByte,
    };
  });
  const linkIndex = new Int32Array(D * D).fill(-1);
  const typical = 1e6; // bytes; ranks links between the same pair
  links.forEach((l, li) => {
    for (const a of l.devices) {
      for (const b of l.devices) {
        if (a === b) continue;
        const cur = linkIndex[a * D + b];
        const t = l.latency + typical * l.secondsPerByte;
        if (cur < 0 || t < links[cur].latency + typical * links[cur].secondsPerByte)
          linkIndex[a * D + b] = li;
      }
    }
  });
  return { links, linkIndex };
}

/**
 * Groups interchangeable devices into types: same signature (or, without one, same figures and cost
 * arrays), neither the input nor the output device, and the swap of the two maps every link onto a link
 * with the same figures. Such swaps generate a group, so each type's members can be used in index order.
 */
export function assignDeviceTypes(p: PlanProblem, signatures?: readonly string[]): void {
  const D = p.devices.length;
  const parent = Array.from({ length: D }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) x = parent[x];
    return x;
  };
  for (let u = 0; u < D; u++) {
    for (let v = u + 1; v < D; v++) {
      if (find(u) === find(v)) continue;
      if (interchangeable(p, u, v, signatures)) parent[find(v)] = find(u);
    }
  }
  const typeOf = new Map<number, number>();
  for (let d = 0; d < D; d++) {
    const root = find(d);
    if (!typeOf.has(root)) typeOf.set(root, typeOf.size);
    (p.devices[d] as { type: number }).type = typeOf.get(root)!;
  }
}

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function interchangeable(p: PlanProblem, u: number, v: number, signatures?: readonly string[]): boolean {
  if (u === p.inputDevice || u === p.outputDevice || v === p.inputDevice || v === p.outputDevice)
    return false;
  const a = p.devices[u];
  const b = p.devices[v];
  if (signatures) {
    if (signatures[u] !== signatures[v]) return false;
  } else {
    if (a.power !== b.power || a.memory !== b.memory || a.macsPerSecond !== b.macsPerSecond) return false;
    if (
      a.memoryBandwidth !== b.memoryBandwidth ||
      JSON.stringify(a.coreClusters) !== JSON.stringify(b.coreClusters)
    )
      return false;
    if (!sameArray(p.prefix[u], p.prefix[v]) || !sameArray(p.startCost[u], p.startCost[v])) return false;
    if (!sameArray(p.endCost[u], p.endCost[v]) || !sameArray(p.memEnd[u], p.memEnd[v])) return false;
  }
  return linkSymmetric(p, u, v);
}

/** Per problem: each link's sorted device key, links by key, and the links touching each device. */
interface LinkIndex {
  byKey: Map<number | string, number[]>;
  touching: number[][];
}
const linkIndexes = new WeakMap<PlanProblem, LinkIndex>();

/** A key for a link's set of devices: a number for a pair, the sorted list otherwise. */
function devicesKey(p: PlanProblem, ds: readonly number[]): number | string {
  if (ds.length === 2) return Math.min(ds[0], ds[1]) * p.devices.length + Math.max(ds[0], ds[1]);
  return [...ds].sort((x, y) => x - y).join(",");
}

function linkIndexOf(p: PlanProblem): LinkIndex {
  let ix = linkIndexes.get(p);
  if (ix) return ix;
  const byKey = new Map<number | string, number[]>();
  const touching: number[][] = p.devices.map(() => []);
  p.links.forEach((l, i) => {
    const k = devicesKey(p, l.devices);
    byKey.set(k, [...(byKey.get(k) ?? []), i]);
    for (const d of l.devices) touching[d].push(i);
  });
  ix = { byKey, touching };
  linkIndexes.set(p, ix);
  return ix;
}

/**
 * Whether swapping devices u and v maps the links onto themselves: every link onto a link with the same
 * figures, consistently with `linkIndex` (so any plan and its swapped twin pay the same transfers). Only links
 * and device pairs that touch u or v can change under the swap: O(links and devices at u and v) per call.
 */
export function linkSymmetric(p: PlanProblem, u: number, v: number): boolean {
  const swap = (x: number) => (x === u ? v : x === v ? u : x);
  const { byKey, touching } = linkIndexOf(p);
  const sigma = new Map<number, number>();
  for (const i of new Set([...touching[u], ...touching[v]])) {
    const l = p.links[i];
    const cands = byKey.get(devicesKey(p, l.devices.map(swap))) ?? [];
    const m = cands.find(
      (c) =>
        p.links[c].latency === l.latency &&
        p.links[c].secondsPerByte === l.secondsPerByte &&
        p.links[c].joulesPerByte === l.joulesPerByte,
    );
    if (m === undefined) return false;
    sigma.set(i, m);
  }
  const D = p.devices.length;
  const check = (x: number, y: number): boolean => {
    if (x === y) return true;
    const l = p.linkIndex[x * D + y];
    const img = p.linkIndex[swap(x) * D + swap(y)];
    return l < 0 ? img < 0 : img === (sigma.get(l) ?? l);
  };
  for (let x = 0; x < D; x++) {
    for (const y of [u, v]) if (!check(x, y) || !check(y, x)) return false;
  }
  return true;
}
