import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { StageAssignment } from "./assign.js";
import { resolveConstraints } from "./constraints.js";
import { evaluateReplicas, type ReplicaCandidate } from "./evaluate-replicas.js";
import type { PartitionOrder } from "./order.js";
import { buildProblem } from "./problem.js";

/** A stage of a replicated split as predicted. Times s, memory bytes, energy J (means are share-weighted). */
export interface ReplicaStageEstimate {
  index: number;
  devices: string[];
  nodes: number;
  /** Mean time of one request, and the group's period (1 / the sum of its replicas' rates). */
  latency: number;
  period: number;
  energy: number;
  replicas: Array<{
    device: string;
    share: number;
    latency: number;
    period: number;
    memory: number;
    memoryLimit: number;
    energy: number;
  }>;
}

/** A transfer between two devices for the share of requests that takes them; figures per inference. */
export interface ReplicaTransferEstimate {
  from: string;
  to: string;
  /** "input", "output", or "stage i -> j". */
  what: string;
  share: number;
  link: string;
  bytes: number;
  time: number;
  energy: number;
}

/** Predicted figures of a split whose stages are replica groups. */
export interface ReplicaEstimate {
  stages: ReplicaStageEstimate[];
  transfers: ReplicaTransferEstimate[];
  /** Expected latency of one request, s. */
  endToEnd: number;
  throughput: number;
  /** What limits throughput: a stage's group ("stage 0 (a+b)") or a link. */
  bottleneck: string;
  energy: number;
}

/**
 * Prices a split whose stage k runs on the device group `groups[k]` (names), with the replica evaluator. The
 * stages must be contiguous in `order`. Bad input raises a one-line ArgumentError naming the field and the
 * device: a stage without a group, an unknown device, a device in two groups, a replica whose device lacks
 * the memory (stage, needed and available), two devices no link joins.
 */
export function estimateReplicaSplit(
  model: AnalyzedModel,
  order: PartitionOrder,
  cluster: Cluster,
  cost: CostModel,
  assignment: StageAssignment,
  groups: readonly (readonly string[])[],
): ReplicaEstimate {
  const bad = (msg: string, device?: string) =>
    new ArgumentError(`--devices: ${msg}`, { field: "devices", ...(device ? { device } : {}) });
  if (groups.length < assignment.count)
    throw bad(`stage ${groups.length} has no device (the split has ${assignment.count} stages)`);
  if (groups.length > assignment.count)
    throw bad(`the split has ${assignment.count} stages but ${groups.length} device groups were given`);
  const names = cluster.devices.map((d) => d.name);
  const seen = new Map<string, number>();
  groups.forEach((g, k) => {
    for (const d of g) {
      if (!names.includes(d)) throw bad(`unknown device '${d}' (devices: ${names.join(", ")})`, d);
      const other = seen.get(d);
      if (other !== undefined)
        throw bad(
          other === k
            ? `device '${d}' is listed twice in stage ${k}`
            : `device '${d}' is in two groups (stages ${other} and ${k})`,
          d,
        );
      seen.set(d, k);
    }
  });
  // Stage ranges in positions of the order.
  const start = new Array<number>(assignment.count).fill(Number.POSITIVE_INFINITY);
  const end = new Array<number>(assignment.count).fill(-1);
  const count = new Array<number>(assignment.count).fill(0);
  order.nodes.forEach((node, q) => {
    const s = assignment.stageOf[node];
    if (s < 0) return;
    start[s] = Math.min(start[s], q);
    end[s] = Math.max(end[s], q + 1);
    count[s]++;
  });
  const p = buildProblem(model, order, cluster, cost);
  const candidate: ReplicaCandidate = {
    stages: groups.map((g, k) => ({ devices: g.map((d) => names.indexOf(d)), start: start[k], end: end[k] })),
  };
  candidate.stages.forEach((s, k) => {
    if (count[k] !== s.end - s.start || (k > 0 && s.start !== candidate.stages[k - 1].end))
      throw bad(`replica groups need stages contiguous in the ${order.strategy} order; stage ${k} is not`);
  });
  const ev = evaluateReplicas(p, candidate, resolveConstraints(p, {}));
  const blocking = ev.violations.find((v) => v.kind === "memory" || v.kind === "link");
  if (blocking)
    throw bad(blocking.message, blocking.device !== undefined ? names[blocking.device] : undefined);
  const S = ev.stages.length;
  const where = (b: number, from: boolean) => (from ? b - 1 : b);
  const what = (b: number) => (b === 0 ? "input" : b === S ? "output" : `stage ${where(b, true)} -> ${b}`);
  let bottleneck = "";
  let worst = -1;
  ev.stages.forEach((g, k) => {
    if (g.period > worst) {
      worst = g.period;
      bottleneck = `stage ${k} (${g.devices.map((d) => names[d]).join("+")})`;
    }
  });
  for (const l of ev.links) {
    if (l.time > worst) {
      worst = l.time;
      bottleneck = `link ${p.links[l.link].name}`;
    }
  }
  return {
    stages: ev.stages.map((g, k) => ({
      index: k,
      devices: g.devices.map((d) => names[d]),
      nodes: count[k],
      latency: g.time,
      period: g.period,
      energy: g.energy,
      replicas: g.replicas.map((r) => ({
        device: names[r.device],
        share: r.share,
        latency: r.time,
        period: r.period,
        memory: r.memory,
        memoryLimit: p.devices[r.device].memory,
        energy: r.energy,
      })),
    })),
    transfers: ev.transfers.map((t) => ({
      from: names[t.from],
      to: names[t.to],
      what: what(t.boundary),
      share: t.fraction,
      link: p.links[t.link].name,
      bytes: t.bytes,
      time: t.time,
      energy: t.energy,
    })),
    endToEnd: ev.latency,
    throughput: ev.throughput,
    bottleneck,
    energy: ev.energy,
  };
}
