import type { Cluster } from "../cluster/types.js";
import { costModelFor } from "../cost/cost-factory.js";
import type { CostModel } from "../cost/cost-model.js";
import { estimateSplit, type SplitEstimate } from "../cost/estimate.js";
import { type Profile, scaleProfile } from "../cost/profile.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { StageAssignment } from "../partition/assign.js";
import { planForCluster } from "../partition/plan-cluster.js";
import type { AdaptCandidate } from "../runtime/control/adapt.js";
import type { EstimateSnapshot } from "../runtime/control/estimates.js";
import type { Deployable } from "../runtime/control/service.js";

/** A split as the runtime runs it: the stage assignment and each stage's devices. */
export interface LiveSplit {
  assignment: StageAssignment;
  devices: string[][];
}

/** Options of {@link liveReplanner}. */
export interface LiveReplanOptions {
  model: AnalyzedModel;
  /** The cluster and the profiles the running split was planned with. */
  cluster: Cluster;
  profiles: Readonly<Record<string, Profile>>;
  /** The split running now. */
  running: LiveSplit;
  /** Writes a split's stage files for a switch (run-split's exporter). */
  exportSplit(split: LiveSplit, throughput: number): Promise<Deployable>;
  /**
   * The measured period may exceed the one predicted from the measured stage times by this factor times its
   * ratio on the first evaluation before the excess is put on the links (default 1.25): below it, the gap is
   * the usual overhead and error, not a slow link.
   */
  linkSlack?: number;
}

/** How the cluster was rescaled from the estimates. */
export interface LiveScaling {
  /** Measured / predicted compute time, by device (1: no measurement). */
  device: Record<string, number>;
  /** Factor every link's transfer time was multiplied by (1: the links are as declared). */
  link: number;
}

/**
 * The re-plan callback of live re-partitioning, built above the runtime (it plans; the runtime does not):
 * given the smoothed estimates, it scales each device's costs by its stages' measured / predicted compute time
 * (its profile, or its nominal rates when it has none), puts a measured period longer than those stages explain
 * on the links (their transfer time scaled so the slowest predicted transfer takes the measured period: the
 * workers' counters time compute, not transfers), and prices the running split and the best plan for
 * throughput on the rescaled cluster. Moving costs the weights of every stage whose device gets other nodes.
 */
export function liveReplanner(opts: LiveReplanOptions): {
  evaluate(est: EstimateSnapshot): AdaptCandidate | undefined;
  /** The last scaling computed. */
  lastScaling(): LiveScaling | undefined;
} {
  const { model, cluster } = opts;
  const slack = opts.linkSlack ?? 1.25;
  const baseCost = costModelFor(model, cluster, { profiles: { ...opts.profiles } });
  let running = opts.running;
  let scaling: LiveScaling | undefined;
  /** Measured period over the one the measured stages explain, on the first evaluation (>= 1). */
  let baseline: number | undefined;
  const estimateOn = (c: Cluster, cost: CostModel, s: LiveSplit): SplitEstimate =>
    estimateSplit(
      model,
      c,
      cost,
      s.assignment.stageOf,
      s.devices.map((g) => g[0]),
    );
  return {
    lastScaling: () => scaling,
    evaluate(est) {
      if (running.devices.some((g) => g.length > 1)) return undefined;
      if (est.throughput === undefined || !(est.throughput > 0)) return undefined;
      const base = estimateOn(cluster, baseCost, running);
      const ratios = new Map<string, number[]>();
      for (const s of base.stages) {
        const measured = est.stageMs.get(s.index);
        if (measured === undefined || !(s.latency > 0)) continue;
        ratios.set(s.device, [...(ratios.get(s.device) ?? []), measured / (s.latency * 1000)]);
      }
      if (ratios.size === 0) return undefined;
      const device: Record<string, number> = {};
      for (const d of cluster.devices) {
        const r = ratios.get(d.name);
        device[d.name] = r ? r.reduce((a, b) => a + b, 0) / r.length : 1;
      }
      const profiles: Record<string, Profile> = {};
      for (const [name, p] of Object.entries(opts.profiles))
        profiles[name] =
          device[name] === 1
            ? p
            : scaleProfile(p, device[name], `measured live: ${device[name].toFixed(2)}x`);
      const devScaled: Cluster = {
        ...cluster,
        devices: cluster.devices.map((d) =>
          opts.profiles[d.name] !== undefined || device[d.name] === 1
            ? d
            : {
                ...d,
                macsPerSecond: { ...d.macsPerSecond, float32: d.macsPerSecond.float32 / device[d.name] },
                memoryBandwidth: d.memoryBandwidth / device[d.name],
              },
        ),
      };
      const devCost = costModelFor(model, devScaled, { profiles });
      const predicted = estimateOn(devScaled, devCost, running);
      // The pipeline's measured period against the one its measured stages explain. Part of the gap is always
      // there (the coordinator, queueing, co-run): its ratio on the first evaluation is the baseline, and only
      // time beyond `slack` times it is put on the links, as extra time on the slowest predicted transfer.
      const periodS = 1 / est.throughput;
      const explained = 1 / predicted.throughput;
      const ratio = periodS / explained;
      baseline ??= Math.max(1, ratio);
      const slowest = Math.max(0, ...predicted.transfers.map((t) => t.time));
      const excess = periodS - baseline * explained;
      const link = ratio > slack * baseline && slowest > 0 ? Math.max(1, (slowest + excess) / slowest) : 1;
      const scaled: Cluster =
        link === 1
          ? devScaled
          : { ...devScaled, links: devScaled.links.map((l) => ({ ...l, bandwidth: l.bandwidth / link })) };
      const cost = link === 1 ? devCost : costModelFor(model, scaled, { profiles });
      scaling = { device, link };
      const now = link === 1 ? predicted : estimateOn(scaled, cost, running);
      let best: ReturnType<typeof planForCluster>;
      try {
        best = planForCluster(model, scaled, cost, { objective: "throughput", replicas: false });
      } catch {
        return undefined;
      }
      const next: LiveSplit = { assignment: best.assignment, devices: best.devices };
      const moveBytes = movedBytes(model, running, next);
      const bandwidth = Math.min(...scaled.links.map((l) => l.bandwidth));
      const changed = Object.entries(device)
        .filter(([, f]) => Math.abs(f - 1) > 0.2)
        .map(([d, f]) => `${d} ${f.toFixed(2)}x`);
      if (link > 1.2) changed.push(`links ${link.toFixed(1)}x slower`);
      return {
        running: now.throughput,
        best: best.throughput,
        moveBytes,
        bandwidth: Number.isFinite(bandwidth) ? bandwidth : 125e6,
        runningKey: splitKey(running),
        bestKey: splitKey(next),
        why: changed.length > 0 ? `measured: ${changed.join(", ")}` : "measured costs",
        build: async () => {
          const d = await opts.exportSplit(next, best.throughput);
          running = next;
          return d;
        },
      };
    },
  };
}

/** A split's identity: each node's stage and each stage's devices (equal keys: the same split). */
export function splitKey(s: LiveSplit): string {
  return `${s.devices.map((g) => g.join("+")).join(">")}:${s.assignment.stageOf.join(",")}`;
}

/** Weight bytes of the stages of `next` whose device runs other nodes in `prev` (what a switch ships). */
export function movedBytes(model: AnalyzedModel, prev: LiveSplit, next: LiveSplit): number {
  const nodesOn = (s: LiveSplit) => {
    const m = new Map<string, number[]>();
    model.graph.nodes.forEach((n, i) => {
      const st = s.assignment.stageOf[i];
      if (st < 0 || n.isConstant) return;
      for (const d of s.devices[st]) m.set(`${d}/${st}`, [...(m.get(`${d}/${st}`) ?? []), i]);
    });
    return m;
  };
  const before = new Set([...nodesOn(prev).values()].map((ns) => ns.join(",")));
  let bytes = 0;
  for (const ns of nodesOn(next).values()) {
    if (before.has(ns.join(","))) continue;
    for (const i of ns) bytes += model.costs[i].paramBytes;
  }
  return bytes;
}
