import type { ResolvedConstraints } from "./constraints.js";
import { fmtBytes, fmtJoules, fmtRate, fmtSeconds } from "./fmt.js";
import {
  coRunFactors,
  coRunning,
  fedPeriod,
  feedsFirstStage,
  linkOf,
  type PlanProblem,
  stageTime,
  transferCost,
} from "./problem.js";

/** One stage of a candidate: positions [start, end) on a device (index into `problem.devices`). */
export interface StageSpec {
  device: number;
  start: number;
  end: number;
}

/** A candidate split: contiguous stages covering positions 0..n in order. */
export interface Candidate {
  stages: StageSpec[];
}

/** A candidate whose stages need not be contiguous in the order: stage of each position, device of each stage. */
export interface AssignmentCandidate {
  stageOf: Int32Array;
  devices: number[];
}

/** Priced stage. Times s, energy J, memory bytes. */
export interface StageEval {
  device: number;
  /** Time of one inference through the stage, s. */
  time: number;
  memory: number;
  energy: number;
  /**
   * Time between inferences in a pipeline, s, when it differs from `time`: the stage is itself a local
   * pipeline (core clusters), or its device slows down beside another stage's device of the same host.
   */
  period?: number;
  /** Co-run slowdown applied to this stage's period (absent when 1). */
  coRun?: number;
  /** CPU time the device spends on the stage's transfers per inference, s, part of the period (absent when 0). */
  transferCpu?: number;
  /** The input device's time per request feeding this first stage (see `PlanProblem.inputFeed`), s. */
  inputFeed?: number;
  /** CPU time the coordinator takes from the device per inference, s, part of the period (absent when 0). */
  coordinatorCpu?: number;
}

/** One transfer: at stage boundary k (0: input to the first stage; S: last stage to the output device). */
export interface TransferEval {
  boundary: number;
  from: number;
  to: number;
  /** Link index, -1 when from === to (nothing sent) or when no link joins them (time is then Infinity). */
  link: number;
  bytes: number;
  time: number;
  energy: number;
}

/** Everything a link carries per inference. */
export interface LinkLoad {
  link: number;
  bytes: number;
  time: number;
  energy: number;
}

/** A broken constraint: what, by how much (in the constraint's unit: s, 1/s, J, bytes), and a readable line. */
export interface Violation {
  kind: "memory" | "link" | "latency" | "throughput" | "energy" | "link-bytes" | "device" | "order" | "empty";
  message: string;
  /** Amount over the limit (or under, for throughput), in the limit's unit; Infinity for a missing link. */
  excess: number;
  stage?: number;
  device?: number;
}

/** A priced candidate. */
export interface Evaluation {
  /** End-to-end latency of one inference (stages + transfers, relay model), s. */
  latency: number;
  /** Longest pipeline stage: a device's stage time or a link's total transfer time per inference, s. */
  bottleneck: number;
  /** 1 / bottleneck, inferences/s. */
  throughput: number;
  /** Energy per inference: active power x stage time + energy per bit on links, J. */
  energy: number;
  stages: StageEval[];
  transfers: TransferEval[];
  links: LinkLoad[];
  violations: Violation[];
  feasible: boolean;
}

/**
 * Prices a contiguous candidate and checks it against the constraints. Transfer model (relay): the tensors
 * crossing a boundary travel from the previous stage's device to the next one's; a tensor that skips a stage
 * is counted on every boundary it crosses (the runtime sends it directly, so this is conservative). Every
 * transfer a link carries adds to its busy time, which is a pipeline stage of its own for throughput.
 * `memory: "fit"` skips computing stage memory (fast, for search): stage memory reads 0 when it fits.
 */
export function evaluate(
  p: PlanProblem,
  c: Candidate,
  rc: ResolvedConstraints,
  opts: { memory?: "value" | "fit" } = {},
): Evaluation {
  const S = c.stages.length;
  const violations: Violation[] = [];
  if (S === 0) return emptyEval([{ kind: "empty", message: "no stages", excess: Number.POSITIVE_INFINITY }]);
  let pos = 0;
  for (const [k, s] of c.stages.entries()) {
    if (s.start !== pos || s.end <= s.start)
      violations.push({
        kind: "empty",
        message: `stage ${k} is empty or not contiguous`,
        excess: 1,
        stage: k,
      });
    pos = s.end;
  }
  if (pos !== p.n)
    violations.push({ kind: "empty", message: `stages cover ${pos} of ${p.n} positions`, excess: p.n - pos });
  if (violations.length > 0) return emptyEval(violations);
  const stages = c.stages.map((s, k) => {
    const time = stageTime(p, s.device, s.start, s.end);
    // "fit" checks memory against the precomputed fits and reports 0 (or Infinity when it does not fit).
    const memory =
      opts.memory === "fit"
        ? s.end <= p.memEnd[s.device][s.start]
          ? 0
          : Number.POSITIVE_INFINITY
        : p.memory(s.device, s.start, s.end);
    return priced(p, s.device, time, memory, k, violations);
  });
  const bytesAt = (k: number) => p.cutBytes[k === S ? p.n : c.stages[k].start];
  return finish(p, stages, bytesAt, rc, violations);
}

/**
 * Prices a candidate whose stages are any sets of positions (data must flow to later stages only), with the
 * same model as {@link evaluate}: a tensor crosses stage boundary k when its producer's stage is before k and
 * its last reader's stage is at or after k. Stage time and memory of a non-contiguous stage come from
 * `problem.setCost`.
 */
export function evaluateAssignment(
  p: PlanProblem,
  a: AssignmentCandidate,
  rc: ResolvedConstraints,
): Evaluation {
  const S = a.devices.length;
  const violations: Violation[] = [];
  const members: number[][] = Array.from({ length: S }, () => []);
  for (let q = 0; q < p.n; q++) {
    const s = a.stageOf[q];
    if (!(s >= 0 && s < S))
      return emptyEval([{ kind: "empty", message: `position ${q} has no stage`, excess: 1 }]);
    members[s].push(q);
  }
  const empty = members.findIndex((m) => m.length === 0);
  if (empty >= 0)
    return emptyEval([{ kind: "empty", message: `stage ${empty} is empty`, excess: 1, stage: empty }]);
  const stages = members.map((m, k) => {
    const d = a.devices[k];
    const contiguous = m[m.length - 1] - m[0] + 1 === m.length;
    const { time, memory } = contiguous
      ? { time: stageTime(p, d, m[0], m[m.length - 1] + 1), memory: p.memory(d, m[0], m[m.length - 1] + 1) }
      : p.setCost(d, m);
    return priced(p, d, time, memory, k, violations);
  });
  const crossing = new Float64Array(S + 2);
  for (const t of p.tensors) {
    const from = t.def < 0 ? -1 : a.stageOf[t.def];
    let to = -1;
    for (const u of t.uses) to = Math.max(to, u >= p.n ? S : a.stageOf[u]);
    if (to < from) {
      violations.push({ kind: "order", message: `tensor ${t.name} would flow backwards`, excess: 1 });
      continue;
    }
    if (to <= from) continue;
    crossing[from + 1] += t.bytes;
    crossing[to + 1] -= t.bytes;
  }
  for (let k = 1; k <= S; k++) crossing[k] += crossing[k - 1];
  return finish(p, stages, (k) => crossing[k], rc, violations);
}

function priced(
  p: PlanProblem,
  d: number,
  time: number,
  memory: number,
  k: number,
  v: Violation[],
): StageEval {
  const dev = p.devices[d];
  checkMemory(p, d, memory, k, v);
  return { device: d, time, memory, energy: dev.power * time };
}

/*
 * Checks shared by this evaluator and the replica-group one (evaluate-replicas.ts), so a constraint reads the
 * same whichever priced the plan.
 */

/** A stage's memory on device d against the device's. */
export function checkMemory(p: PlanProblem, d: number, memory: number, k: number, v: Violation[]): void {
  const dev = p.devices[d];
  if (memory > dev.memory)
    v.push({
      kind: "memory",
      message: `stage ${k} needs ${fmtBytes(memory)} on ${dev.name}, which has ${fmtBytes(dev.memory)}`,
      excess: memory - dev.memory,
      stage: k,
      device: d,
    });
}

/** Device d running stage k: once in the plan (`seen` holds the devices of earlier stages), and allowed. */
export function checkDevice(
  p: PlanProblem,
  rc: ResolvedConstraints,
  d: number,
  k: number,
  seen: Set<number>,
  v: Violation[],
): void {
  const name = p.devices[d].name;
  if (seen.has(d))
    v.push({ kind: "device", message: `${name} runs two stages`, excess: 1, stage: k, device: d });
  seen.add(d);
  if (!rc.allowed[d])
    v.push({ kind: "device", message: `${name} may not run stages`, excess: 1, stage: k, device: d });
}

/** A link's bytes per inference against the cap. */
export function checkLinkBytes(p: PlanProblem, rc: ResolvedConstraints, l: LinkLoad, v: Violation[]): void {
  if (l.bytes > rc.maxLinkBytes)
    v.push({
      kind: "link-bytes",
      message: `link ${p.links[l.link].name} carries ${fmtBytes(l.bytes)} per inference (limit ${fmtBytes(rc.maxLinkBytes)})`,
      excess: l.bytes - rc.maxLinkBytes,
    });
}

/** End-to-end latency, bottleneck (s per inference) and energy against their limits. */
export function checkTotals(
  rc: ResolvedConstraints,
  latency: number,
  bottleneck: number,
  energy: number,
  v: Violation[],
): void {
  if (latency > rc.maxLatency)
    v.push({
      kind: "latency",
      message: `latency ${fmtSeconds(latency)} over ${fmtSeconds(rc.maxLatency)}`,
      excess: latency - rc.maxLatency,
    });
  if (bottleneck > rc.maxBottleneck)
    v.push({
      kind: "throughput",
      message: `throughput ${fmtRate(1 / bottleneck)} under ${fmtRate(1 / rc.maxBottleneck)}`,
      excess: 1 / rc.maxBottleneck - 1 / bottleneck,
    });
  if (energy > rc.maxEnergy)
    v.push({
      kind: "energy",
      message: `energy ${fmtJoules(energy)} over ${fmtJoules(rc.maxEnergy)}`,
      excess: energy - rc.maxEnergy,
    });
}

function finish(
  p: PlanProblem,
  stages: StageEval[],
  bytesAt: (k: number) => number,
  rc: ResolvedConstraints,
  violations: Violation[],
): Evaluation {
  const S = stages.length;
  const devices = stages.map((s) => s.device);
  const beside = coRunning(p, devices);
  coRunFactors(p, devices).forEach((f, k) => {
    const dev = p.devices[stages[k].device];
    const io = (dev.transferCpu ?? 0) * (bytesAt(k) + bytesAt(k + 1));
    const coord = beside[k] ? (dev.coordinatorCpu ?? 0) : 0;
    if (f > 1) stages[k].coRun = f;
    if (io > 0) stages[k].transferCpu = io;
    if (coord > 0) stages[k].coordinatorCpu = coord;
    if (f > 1 || io > 0 || coord > 0) stages[k].period = stages[k].time * f + io + coord;
  });
  // A first stage the input device feeds (it encodes the graph inputs and sends them on): the encode is the
  // input device's time, and the stage runs no faster than the input device feeds it (as priceGroup prices it).
  if (S > 0 && feedsFirstStage(p, stages[0].device)) {
    stages[0].period = fedPeriod(p, stages[0].device, 0, stages[0].period ?? stages[0].time);
    stages[0].inputFeed = p.inputFeed?.feed;
  }
  const seen = new Set<number>();
  stages.forEach((s, k) => {
    const name = p.devices[s.device].name;
    checkDevice(p, rc, s.device, k, seen, violations);
    if (rc.rank && k > 0 && rc.rank[s.device] <= rc.rank[stages[k - 1].device])
      violations.push({
        kind: "order",
        message: `${name} comes out of the device order`,
        excess: 1,
        stage: k,
      });
  });
  const transfers: TransferEval[] = [];
  const loads = new Map<number, LinkLoad>();
  let latency = 0;
  let energy = 0;
  let bottleneck = 0;
  for (let k = 0; k <= S; k++) {
    const from = k === 0 ? p.inputDevice : stages[k - 1].device;
    const to = k === S ? p.outputDevice : stages[k].device;
    const bytes = bytesAt(k);
    let t: TransferEval;
    if (from === to || bytes <= 0) t = { boundary: k, from, to, link: -1, bytes: 0, time: 0, energy: 0 };
    else {
      const l = linkOf(p, from, to);
      if (l < 0) {
        violations.push({
          kind: "link",
          message: `no link between ${p.devices[from].name} and ${p.devices[to].name}`,
          excess: Number.POSITIVE_INFINITY,
          stage: k,
        });
        t = { boundary: k, from, to, link: -1, bytes, time: Number.POSITIVE_INFINITY, energy: 0 };
      } else {
        const c = transferCost(p, l, bytes);
        t = { boundary: k, from, to, link: l, bytes, time: c.time, energy: c.energy };
        const load = loads.get(l) ?? { link: l, bytes: 0, time: 0, energy: 0 };
        load.bytes += bytes;
        load.time += c.time;
        load.energy += c.energy;
        loads.set(l, load);
      }
    }
    transfers.push(t);
    latency += t.time;
    energy += t.energy;
    if (k < S) {
      latency += stages[k].time;
      energy += stages[k].energy;
      bottleneck = Math.max(bottleneck, stages[k].period ?? stages[k].time);
    }
  }
  const links = [...loads.values()].sort((a, b) => a.link - b.link);
  for (const l of links) {
    bottleneck = Math.max(bottleneck, l.time);
    checkLinkBytes(p, rc, l, violations);
  }
  for (const t of transfers) if (t.time === Number.POSITIVE_INFINITY) bottleneck = Number.POSITIVE_INFINITY;
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

function emptyEval(violations: Violation[]): Evaluation {
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

/** The value a plan minimises for an objective: latency (s), bottleneck (s per inference) or energy (J). */
export function objectiveValue(
  e: Pick<Evaluation, "latency" | "bottleneck" | "energy">,
  objective: string,
): number {
  return objective === "latency" ? e.latency : objective === "throughput" ? e.bottleneck : e.energy;
}

/** Contiguous candidate from stage boundaries (increasing, 1..n-1) and one device per stage. */
export function candidateFromCuts(n: number, cuts: readonly number[], devices: readonly number[]): Candidate {
  const bounds = [0, ...cuts, n];
  return { stages: devices.map((device, k) => ({ device, start: bounds[k], end: bounds[k + 1] })) };
}
