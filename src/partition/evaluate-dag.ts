import { linkOf, type PlanProblem, stageTime, transferCost } from "./problem.js";

/** A stage of a plan: positions [start, end) of the order on a device (index into `problem.devices`). */
export interface DagStage {
  device: number;
  start: number;
  end: number;
}

/** One stage as scheduled for a single request: times from the request's arrival, s. */
export interface DagStageTime {
  device: number;
  /** When its inputs were all there and its device was free, and when it finished. */
  start: number;
  finish: number;
  /** Its compute time (co-running slowdown included). */
  time: number;
}

/** One transfer between stages (fromStage -1: the input device; toStage = stage count: the output device). */
export interface DagTransfer {
  fromStage: number;
  toStage: number;
  from: number;
  to: number;
  /** Link index (-1: none joins the devices, time Infinity). */
  link: number;
  bytes: number;
  start: number;
  finish: number;
  energy: number;
}

/** A plan priced as a graph of stages for one request at a time. */
export interface DagEvaluation {
  /** End-to-end latency of one request: when the last output reached the output device, s. */
  latency: number;
  energy: number;
  stages: DagStageTime[];
  transfers: DagTransfer[];
}

/**
 * Prices a plan whose stages form a graph: the latency of one request is the critical path through stages
 * and transfers, with each device running its own stages one at a time (in stage order, as a worker's queue
 * does) and each link carrying one transfer at a time. A stage starts when its device is free and every
 * tensor it reads has arrived; its outputs leave for every reader as soon as it finishes (straight to the
 * reading stage, as the runtime sends them), so transfers overlap other stages' compute. Two stages on devices
 * of one host that overlap in time each take the device's co-run factor longer. Stages must be listed so
 * data flows from lower to higher indices.
 */
export function evaluateDag(p: PlanProblem, stages: readonly DagStage[]): DagEvaluation {
  const S = stages.length;
  const stageOf = new Int32Array(p.n).fill(-1);
  stages.forEach((s, k) => {
    for (let q = s.start; q < s.end; q++) stageOf[q] = k;
  });
  // Bytes between each pair of stages (-1: graph input; S: graph output).
  const flows = new Map<string, { from: number; to: number; bytes: number }>();
  for (const t of p.tensors) {
    const from = t.def < 0 ? -1 : stageOf[t.def];
    const readers = new Set<number>();
    for (const u of t.uses) readers.add(u >= p.n ? S : stageOf[u]);
    for (const to of readers) {
      if (to === from) continue;
      const key = `${from}:${to}`;
      const f = flows.get(key) ?? { from, to, bytes: 0 };
      f.bytes += t.bytes;
      flows.set(key, f);
    }
  }
  const incoming: { from: number; bytes: number }[][] = Array.from({ length: S + 1 }, () => []);
  for (const f of flows.values()) incoming[f.to].push(f);
  const deviceOf = (k: number) => (k < 0 ? p.inputDevice : k >= S ? p.outputDevice : stages[k].device);
  const hostOf = (k: number) => p.devices[stages[k].device].host;
  const schedule = (slow: Float64Array) => {
    const finish = new Float64Array(S);
    const deviceFree = new Float64Array(p.devices.length);
    const linkFree = new Float64Array(p.links.length);
    const transfers: DagTransfer[] = [];
    const times: DagStageTime[] = [];
    const arrive = (f: { from: number; bytes: number }, to: number): number => {
      const ready = f.from < 0 ? 0 : finish[f.from];
      const a = deviceOf(f.from);
      const b = deviceOf(to);
      if (a === b) return ready;
      const l = linkOf(p, a, b);
      const cost = l < 0 ? { time: Number.POSITIVE_INFINITY, energy: 0 } : transferCost(p, l, f.bytes);
      const start = l < 0 ? ready : Math.max(ready, linkFree[l]);
      const end = start + cost.time;
      if (l >= 0) linkFree[l] = end;
      transfers.push({
        fromStage: f.from,
        toStage: to,
        from: a,
        to: b,
        link: l,
        bytes: f.bytes,
        start,
        finish: end,
        energy: cost.energy,
      });
      return end;
    };
    for (let k = 0; k < S; k++) {
      const d = stages[k].device;
      let ready = 0;
      for (const f of incoming[k].sort((x, y) => x.from - y.from)) ready = Math.max(ready, arrive(f, k));
      const start = Math.max(ready, deviceFree[d]);
      const time = stageTime(p, d, stages[k].start, stages[k].end) * slow[k];
      finish[k] = start + time;
      deviceFree[d] = finish[k];
      times.push({ device: d, start, finish: finish[k], time });
    }
    let latency = 0;
    for (const f of incoming[S]) latency = Math.max(latency, arrive(f, S));
    for (let k = 0; k < S; k++) if (stages[k].end === p.n) latency = Math.max(latency, finish[k]);
    return { latency, stages: times, transfers };
  };
  const none = new Float64Array(S).fill(1);
  let out = schedule(none);
  // Stages of one host computing at the same time slow each other: stretch those and schedule again.
  const slow = new Float64Array(S).fill(1);
  for (let a = 0; a < S; a++) {
    for (let b = 0; b < S; b++) {
      if (a === b || stages[a].device === stages[b].device) continue;
      const h = hostOf(a);
      if (h === undefined || h !== hostOf(b)) continue;
      const x = out.stages[a];
      const y = out.stages[b];
      if (x.start < y.finish && y.start < x.finish) slow[a] = p.devices[stages[a].device].coRun ?? 1;
    }
  }
  if (slow.some((v) => v !== 1)) out = schedule(slow);
  const energy =
    out.stages.reduce((s, t) => s + t.time * p.devices[t.device].power, 0) +
    out.transfers.reduce((s, t) => s + t.energy, 0);
  return { ...out, energy };
}
