import type { ResolvedConstraints } from "./constraints.js";
import {
  type Candidate,
  checkDevice,
  checkLinkBytes,
  checkMemory,
  checkTotals,
  type LinkLoad,
  type Violation,
} from "./evaluate.js";
import { fedPeriod, linkOf, type PlanProblem, stageTime } from "./problem.js";

/** One stage of a replicated candidate: positions [start, end) run by every device of `devices` (indices). */
export interface ReplicaStageSpec {
  devices: number[];
  start: number;
  end: number;
}

/** A candidate whose stages are replica groups: contiguous stages covering positions 0..n in order. */
export interface ReplicaCandidate {
  stages: ReplicaStageSpec[];
}

/** One replica of a priced stage. Times s, energy J, memory bytes. */
export interface ReplicaEval {
  device: number;
  /** Fraction of the requests it runs: its rate (1 / period) over the group's. */
  share: number;
  /** Time of one request on it, s. */
  time: number;
  /** Time between its requests in the pipeline: time x coRun + transfer CPU + coordinator CPU, s. */
  period: number;
  memory: number;
  /** Energy of one request on it, J. */
  energy: number;
  coRun?: number;
  transferCpu?: number;
  coordinatorCpu?: number;
}

/** A priced replica group. */
export interface GroupStageEval {
  devices: number[];
  replicas: ReplicaEval[];
  /** Share-weighted mean time of one request, s. */
  time: number;
  /** The group's period: 1 / the sum of its replicas' rates (a replica's own period when alone), s. */
  period: number;
  /** The largest replica's memory, bytes. */
  memory: number;
  /** Share-weighted mean energy, J. */
  energy: number;
  /** Time per request of the group the input device spends feeding it (see {@link fedFirstStage}), s. */
  inputFeed?: number;
}

/**
 * A transfer between two devices at stage boundary k (0: input device to stage 0; S: last stage to the output
 * device), for the `fraction` of requests (product of the two ends' shares) that take this pair. Bytes, time
 * and energy are per inference (already multiplied by the fraction).
 */
export interface PairTransfer {
  boundary: number;
  from: number;
  to: number;
  fraction: number;
  /** Link index; -1 when no link joins them (time is then Infinity). */
  link: number;
  bytes: number;
  time: number;
  energy: number;
}

/** A priced replicated candidate (the fields of {@link Evaluation} that apply). */
export interface ReplicaEvaluation {
  /** Expected end-to-end latency of one request: stages and transfers weighted by the requests taking them, s. */
  latency: number;
  /** Longest pipeline stage: a group's period or a link's busy time per inference, s. */
  bottleneck: number;
  throughput: number;
  /** Expected energy per inference, J. */
  energy: number;
  stages: GroupStageEval[];
  /** Transfers that move bytes (pairs on one device move none and are left out). */
  transfers: PairTransfer[];
  links: LinkLoad[];
  violations: Violation[];
  feasible: boolean;
}

/** A pipeline candidate as a replicated one (each stage a group of one). */
export function asReplicaCandidate(c: Candidate): ReplicaCandidate {
  return { stages: c.stages.map((s) => ({ devices: [s.device], start: s.start, end: s.end })) };
}

/** The pipeline candidate of a replicated one whose groups are all single devices, else undefined. */
export function asPipelineCandidate(c: ReplicaCandidate): Candidate | undefined {
  if (c.stages.some((s) => s.devices.length !== 1)) return undefined;
  return { stages: c.stages.map((s) => ({ device: s.devices[0], start: s.start, end: s.end })) };
}

/**
 * Per-device pipeline factors of a plan using the devices in `used`: the co-run factor and the coordinator's
 * CPU time apply to a device when another device of the plan shares its host (replicas of one stage compute
 * at the same time too), as in {@link evaluate}.
 */
export function replicaFactors(
  p: PlanProblem,
  used: readonly number[],
): { coRun: Float64Array; coordinator: Float64Array } {
  const D = p.devices.length;
  const coRun = new Float64Array(D).fill(1);
  const coordinator = new Float64Array(D);
  // Counted with repeats, as evaluate() counts a device that runs two stages as beside itself.
  const onHost = new Map<number, number>();
  for (const d of used) {
    const h = p.devices[d].host;
    if (h !== undefined) onHost.set(h, (onHost.get(h) ?? 0) + 1);
  }
  for (const d of used) {
    const h = p.devices[d].host;
    if (h === undefined || (onHost.get(h) ?? 0) < 2) continue;
    coRun[d] = Math.max(1, p.devices[d].coRun ?? 1);
    coordinator[d] = p.devices[d].coordinatorCpu ?? 0;
  }
  return { coRun, coordinator };
}

/**
 * Prices one replica group on positions [start, end) with the given per-device factors: each replica's
 * period is its time x co-run factor + transfer CPU x (bytes in + bytes out) + coordinator CPU; shares are
 * proportional to 1 / period. Memory is not checked here (`memory` says how to read it).
 */
export function priceGroup(
  p: PlanProblem,
  devices: readonly number[],
  start: number,
  end: number,
  coRun: ArrayLike<number>,
  coordinator: ArrayLike<number>,
  memory: (d: number) => number,
): GroupStageEval {
  const bytes = p.cutBytes[start] + p.cutBytes[end];
  const replicas: ReplicaEval[] = devices.map((d) => {
    const dev = p.devices[d];
    const time = stageTime(p, d, start, end);
    const f = coRun[d];
    const io = (dev.transferCpu ?? 0) * bytes;
    const coord = coordinator[d];
    const r: ReplicaEval = {
      device: d,
      share: 1,
      time,
      period: time * f + io + coord,
      memory: memory(d),
      energy: dev.power * time,
    };
    if (f > 1) r.coRun = f;
    if (io > 0) r.transferCpu = io;
    if (coord > 0) r.coordinatorCpu = coord;
    return r;
  });
  const fed = start === 0 ? fedFirstStage(p, replicas) : undefined;
  if (fed) return fed;
  if (replicas.length === 1) {
    const r = replicas[0];
    return {
      devices: [...devices],
      replicas,
      time: r.time,
      period: r.period,
      memory: r.memory,
      energy: r.energy,
    };
  }
  let rate = 0;
  for (const r of replicas) rate += 1 / r.period;
  // Replicas that take no time at all (possible in made-up problems) share the requests evenly.
  const zero = replicas.filter((r) => r.period === 0).length;
  let time = 0;
  let energy = 0;
  let mem = 0;
  for (const r of replicas) {
    r.share = zero > 0 ? (r.period === 0 ? 1 / zero : 0) : 1 / r.period / rate;
    time += r.share * r.time;
    energy += r.share * r.energy;
    mem = Math.max(mem, r.memory);
  }
  return { devices: [...devices], replicas, time, period: zero > 0 ? 0 : 1 / rate, memory: mem, energy };
}

/**
 * A first stage fed by the input device (`p.inputFeed`: graph inputs it encodes and sends on), priced with that
 * device's time: the encode leaves the other replicas' periods (their stage time keeps it, for latency), every
 * request sent to them takes `feed` of the input device, and beyond what the input device can feed (1 / feed)
 * the others slow down together. The input device's own replica of the stage takes no requests (share 0; the
 * planner then leaves it out): measured on camera-server (ResNet-50, input int4-channel), a camera replica
 * priced at a 7.5% share took 2 of 24 requests and about 40% of the camera's CPU, and the server, waiting for
 * its inputs, ran 11.8/s where the same feed without the camera's replica gave 19.5/s; its requests also take
 * the slowest device's time. Undefined when there is nothing to feed (no `inputFeed`, or only the input device).
 */
function fedFirstStage(p: PlanProblem, replicas: ReplicaEval[]): GroupStageEval | undefined {
  const f = p.inputFeed;
  const c = p.inputDevice;
  if (!f || f.feed <= 0 || replicas.every((r) => r.device === c)) return undefined;
  if (replicas.length === 1) {
    // As evaluate() prices a first stage the input device feeds.
    const r = replicas[0];
    r.period = fedPeriod(p, r.device, 0, r.period);
    const { time, period, memory, energy } = r;
    return { devices: [r.device], replicas, time, period, memory, energy, inputFeed: f.feed };
  }
  for (const r of replicas) if (r.device !== c) r.period = Math.max(0, r.period - f.encode);
  const fed = replicas.filter((r) => r.device !== c);
  // What the fed replicas could take, and what feeding that costs the input device per second.
  const instant = fed.filter((r) => r.period === 0).length;
  const fedRate = instant > 0 ? Number.POSITIVE_INFINITY : fed.reduce((a, r) => a + 1 / r.period, 0);
  const busy = fedRate * f.feed;
  const rates = replicas.map((r) => {
    if (r.device === c) return 0;
    // Beyond what the input device feeds, the fed replicas slow down together (replicas that take no time
    // share the feeding evenly).
    if (instant > 0) return r.period === 0 ? 1 / f.feed / instant : 0;
    return busy > 1 ? 1 / r.period / busy : 1 / r.period;
  });
  const rate = rates.reduce((a, x) => a + x, 0);
  let time = 0;
  let energy = 0;
  let memory = 0;
  replicas.forEach((r, i) => {
    r.share = rates[i] / rate;
    time += r.share * r.time;
    energy += r.share * r.energy;
    memory = Math.max(memory, r.memory);
  });
  return {
    devices: replicas.map((r) => r.device),
    replicas,
    time,
    period: 1 / rate,
    memory,
    energy,
    inputFeed: f.feed,
  };
}

/**
 * Prices a replicated candidate and checks it against the constraints, with the cost terms of
 * {@link evaluate}. Requests of a stage are spread over its replicas in proportion to their rates; a transfer
 * of B bytes between stages k-1 and k goes from replica a to replica b for a fraction share_a x share_b of the
 * requests (nothing when a === b), so a link is busy per inference for the sum, over the pairs it carries
 * (every pair on a shared medium), of that fraction x (latency + B x s/byte). The input device sends to stage
 * 0's replicas and the last stage's replicas send to the output device the same way. Throughput is 1 / the
 * largest group period or link busy time; latency and energy are expectations over the requests' paths.
 * Memory is checked per replica against its device. A group of one device prices exactly as
 * {@link evaluate} prices its stage.
 */
export function evaluateReplicas(
  p: PlanProblem,
  c: ReplicaCandidate,
  rc: ResolvedConstraints,
): ReplicaEvaluation {
  const S = c.stages.length;
  const violations: Violation[] = [];
  if (S === 0) return emptyEval([{ kind: "empty", message: "no stages", excess: Number.POSITIVE_INFINITY }]);
  let pos = 0;
  for (const [k, s] of c.stages.entries()) {
    if (s.start !== pos || s.end <= s.start || s.devices.length === 0)
      violations.push({
        kind: "empty",
        message: `stage ${k} is empty, has no device or is not contiguous`,
        excess: 1,
        stage: k,
      });
    pos = s.end;
  }
  if (pos !== p.n)
    violations.push({ kind: "empty", message: `stages cover ${pos} of ${p.n} positions`, excess: p.n - pos });
  if (violations.length > 0) return emptyEval(violations);

  const used = c.stages.flatMap((s) => s.devices);
  const { coRun, coordinator } = replicaFactors(p, used);
  const stages = c.stages.map((s, k) =>
    priceGroup(p, s.devices, s.start, s.end, coRun, coordinator, (d) => {
      const memory = p.memory(d, s.start, s.end);
      checkMemory(p, d, memory, k, violations);
      return memory;
    }),
  );
  const seen = new Set<number>();
  stages.forEach((s, k) => {
    for (const d of s.devices) checkDevice(p, rc, d, k, seen, violations);
    if (rc.rank && k > 0) {
      const rank = rc.rank;
      const prevMax = Math.max(...stages[k - 1].devices.map((d) => rank[d]));
      const late = s.devices.find((d) => rank[d] <= prevMax);
      if (late !== undefined)
        violations.push({
          kind: "order",
          message: `${p.devices[late].name} comes out of the device order`,
          excess: 1,
          stage: k,
        });
    }
  });

  const transfers: PairTransfer[] = [];
  const loads = new Map<number, { link: number; bytes: number; time: number; energy: number }>();
  const input: GroupStageEval = {
    devices: [p.inputDevice],
    replicas: [replicaAt(p.inputDevice)],
    time: 0,
    period: 0,
    memory: 0,
    energy: 0,
  };
  const output: GroupStageEval = {
    ...input,
    devices: [p.outputDevice],
    replicas: [replicaAt(p.outputDevice)],
  };
  let latency = 0;
  let energy = 0;
  let bottleneck = 0;
  let missing = false;
  for (let k = 0; k <= S; k++) {
    const from = k === 0 ? input : stages[k - 1];
    const to = k === S ? output : stages[k];
    const bytes = p.cutBytes[k === S ? p.n : c.stages[k].start];
    if (bytes > 0) {
      for (const a of from.replicas) {
        for (const b of to.replicas) {
          if (a.device === b.device) continue;
          const fraction = from.replicas.length === 1 && to.replicas.length === 1 ? 1 : a.share * b.share;
          const l = linkOf(p, a.device, b.device);
          if (l < 0) {
            violations.push({
              kind: "link",
              message: `no link between ${p.devices[a.device].name} and ${p.devices[b.device].name}`,
              excess: Number.POSITIVE_INFINITY,
              stage: k,
            });
            missing = true;
            transfers.push({
              boundary: k,
              from: a.device,
              to: b.device,
              fraction,
              link: -1,
              bytes,
              time: Infinity,
              energy: 0,
            });
            latency += Number.POSITIVE_INFINITY;
            continue;
          }
          const link = p.links[l];
          const t: PairTransfer = {
            boundary: k,
            from: a.device,
            to: b.device,
            fraction,
            link: l,
            bytes: fraction * bytes,
            time: fraction * (link.latency + bytes * link.secondsPerByte),
            energy: fraction * (bytes * link.joulesPerByte),
          };
          transfers.push(t);
          const load = loads.get(l) ?? { link: l, bytes: 0, time: 0, energy: 0 };
          load.bytes += t.bytes;
          load.time += t.time;
          load.energy += t.energy;
          loads.set(l, load);
          latency += t.time;
          energy += t.energy;
        }
      }
    }
    if (k < S) {
      latency += stages[k].time;
      energy += stages[k].energy;
      bottleneck = Math.max(bottleneck, stages[k].period);
    }
  }
  const links = [...loads.values()].sort((a, b) => a.link - b.link);
  for (const l of links) {
    bottleneck = Math.max(bottleneck, l.time);
    checkLinkBytes(p, rc, l, violations);
  }
  if (missing) bottleneck = Number.POSITIVE_INFINITY;
  checkTotals(rc, latency, bottleneck, energy, violations);
  return {
    latency,
    bottleneck,
    throughput: bottleneck > 0 ? 1 / bottleneck : Number.POSITIVE_INFINITY,
    energy,
    stages,
    transfers,
    links,
    violations,
    feasible: violations.length === 0,
  };
}

function replicaAt(d: number): ReplicaEval {
  return { device: d, share: 1, time: 0, period: 0, memory: 0, energy: 0 };
}

function emptyEval(violations: Violation[]): ReplicaEvaluation {
  const inf = Number.POSITIVE_INFINITY;
  return {
    latency: inf,
    bottleneck: inf,
    throughput: 0,
    energy: inf,
    stages: [],
    transfers: [],
    links: [],
    violations,
    feasible: false,
  };
}
