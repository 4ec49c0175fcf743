import { remainingCluster } from "../cluster/remaining.js";
import type { Cluster } from "../cluster/types.js";
import { costModelFor } from "../cost/cost-factory.js";
import type { CostModel } from "../cost/cost-model.js";
import { estimateSplit, linkBetween, type SplitEstimate } from "../cost/estimate.js";
import { type Profile, scaleProfile } from "../cost/profile.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { EncodingName, TensorEncoding } from "../onnx/encoding.js";
import type { StageAssignment } from "../partition/assign.js";
import type { Calibrator, FidelityBudget } from "../partition/calibrate.js";
import { formatBudget, type CodecTimes } from "../partition/encodings.js";
import { planForCluster } from "../partition/plan-cluster.js";
import { planWithFidelity } from "../partition/plan-fidelity.js";
import type { AdaptCandidate, AdaptContext } from "../runtime/control/adapt.js";
import type { EstimateSnapshot } from "../runtime/control/estimates.js";
import type { Deployable } from "../runtime/control/service.js";

/** A split as the runtime runs it: the stage assignment and each stage's devices. */
export interface LiveSplit {
  assignment: StageAssignment;
  devices: string[][];
  /** Cut tensors sent encoded (none: all float32). */
  encodings?: readonly TensorEncoding[];
  /** True when its stage 0 only encodes graph inputs (the measured stage indices are one past the plan's). */
  encoderStage?: boolean;
}

/**
 * The fidelity budget re-planning keeps: each proposal plans cut and encodings together (`planWithFidelity`)
 * with the calibrator of the initial planning, whose measured fidelities are cached, so a re-plan measures only
 * the cut tensors it has not seen.
 */
export interface LiveFidelity {
  budget: FidelityBudget;
  calibrator: Calibrator;
  codecTimes: CodecTimes;
  encodings?: readonly EncodingName[];
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
  /** Re-plan under this budget, cut and encodings together (none: float32 cuts only). */
  fidelity?: LiveFidelity;
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
 * given the smoothed estimates, it scales each device's costs by its stages' measured service time (run,
 * framing and any CPU withheld; compute time from workers that do not report it) over their predicted compute
 * time (its profile, or its nominal rates when it has none), puts a measured period longer than those stages explain
 * on the links (their transfer time scaled so the slowest predicted transfer takes the measured period: the
 * workers' counters time compute, not transfers; a period the stages explain keeps the factor last measured,
 * bounded by what fits in the period), and prices the running split and the best plan for
 * throughput on the rescaled cluster. Moving costs the weights of every stage whose device gets other nodes.
 * With a fidelity budget the best plan is planned under it (its encodings come with it, each measured on the
 * calibration and held-out inputs), and the running split is priced with its own encodings.
 */
export function liveReplanner(opts: LiveReplanOptions): {
  /** `now`: what the controller runs (absent: the split last built, on the whole cluster). */
  evaluate(est: EstimateSnapshot, now?: AdaptContext): Promise<AdaptCandidate | undefined>;
  /** The last scaling computed. */
  lastScaling(): LiveScaling | undefined;
  /** How long the last proposal took to plan, ms (with a budget: planning and calibrating what was new). */
  lastPlanMs(): number | undefined;
} {
  const { model } = opts;
  const slack = opts.linkSlack ?? 1.25;
  /** Costs as planned, per cluster priced (the whole one; after a loss, the devices left). */
  const baseCosts = new Map<string, CostModel>();
  const baseCostOf = (c: Cluster): CostModel => {
    const known = baseCosts.get(c.name);
    if (known) return known;
    const m = costModelFor(model, c, { profiles: { ...opts.profiles } });
    baseCosts.set(c.name, m);
    return m;
  };
  let running = opts.running;
  let scaling: LiveScaling | undefined;
  /** Measured period over the one the measured stages explain, on the first evaluation (>= 1). */
  let baseline: number | undefined;
  let planMs: number | undefined;
  /** The links' slow-down factor last measured (1: as declared). */
  let linkFactor = 1;
  const estimateOn = (c: Cluster, cost: CostModel, s: LiveSplit): SplitEstimate =>
    estimateSplit(
      model,
      c,
      cost,
      s.assignment.stageOf,
      s.devices.map((g) => g[0]),
      new Map((s.encodings ?? []).map((e) => [e.tensor, e])),
    );
  /** The best plan for throughput on the rescaled cluster, under the budget when there is one. */
  const propose = async (c: Cluster, cost: CostModel): Promise<{ split: LiveSplit; throughput: number }> => {
    const f = opts.fidelity;
    if (!f) {
      const best = planForCluster(model, c, cost, { objective: "throughput", replicas: false });
      return { split: { assignment: best.assignment, devices: best.devices }, throughput: best.throughput };
    }
    const fp = await planWithFidelity(model, c, cost, {
      objective: "throughput",
      replicas: false,
      budget: f.budget,
      calibrator: f.calibrator,
      codecTimes: f.codecTimes,
      ...(f.encodings ? { encodings: f.encodings } : {}),
    });
    const cp = fp.plan;
    const graphInputs = new Set(model.graph.inputs.map((v) => v.name));
    return {
      split: {
        assignment: cp.assignment,
        devices: cp.devices,
        encodings: fp.encodings,
        encoderStage: fp.encodings.some((e) => graphInputs.has(e.tensor)),
      },
      throughput: cp.throughput,
    };
  };
  return {
    lastScaling: () => scaling,
    lastPlanMs: () => planMs,
    async evaluate(est, ctx) {
      // After a recovery (or a rejoin) the deployment is not the one this replanner last built: price that one,
      // over the devices not lost, and start its period baseline and link factor again.
      const deployed = liveSplitOf(ctx?.deployed.split);
      if (deployed && splitKey(deployed) !== splitKey(running)) {
        running = deployed;
        baseline = undefined;
        linkFactor = 1;
      }
      const lost = new Set(ctx?.lost ?? []);
      if (running.devices.some((g) => g.length > 1 || g.some((d) => lost.has(d)))) return undefined;
      const cluster =
        lost.size === 0
          ? opts.cluster
          : remainingCluster(
              opts.cluster,
              opts.cluster.devices.map((d) => d.name).filter((d) => !lost.has(d)),
            );
      const baseCost = baseCostOf(cluster);
      if (est.throughput === undefined || !(est.throughput > 0)) return undefined;
      const base = estimateOn(cluster, baseCost, running);
      const ratios = new Map<string, number[]>();
      const shift = running.encoderStage ? 1 : 0;
      for (const s of base.stages) {
        // Service time where the workers report it: on a device under a CPU quota the runs themselves can fit in
        // the quota while the process waits between them, which compute time alone would put on the links.
        const measured = est.stageServiceMs?.get(s.index + shift) ?? est.stageMs.get(s.index + shift);
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
      // The slowest predicted transfer's time on the wire (its bytes over the bandwidth: the latency does not
      // scale with it), and what the period leaves it.
      const wire = (t: { from: string; to: string; time: number }) =>
        Math.max(0, t.time - linkBetween(devScaled, t.from, t.to).latency);
      const slowestT = predicted.transfers.reduce<(typeof predicted.transfers)[number] | undefined>(
        (w, t) => (w === undefined || t.time > w.time ? t : w),
        undefined,
      );
      const slowest = slowestT ? wire(slowestT) : 0;
      const room = slowestT ? periodS - (slowestT.time - slowest) : 0;
      const excess = periodS - baseline * explained;
      // A period its stages explain says the links are at most so slow that the slowest transfer fits in it,
      // not that they are fast again: a split that switched to smaller encodings (or another cut) because a
      // link got slow is compute-bound on it. So the factor last measured is kept within that bound.
      const link =
        slowest <= 0
          ? 1
          : ratio > slack * baseline
            ? Math.max(1, (slowest + excess) / slowest)
            : Math.max(1, Math.min(linkFactor, room / slowest));
      linkFactor = link;
      const scaled: Cluster =
        link === 1
          ? devScaled
          : { ...devScaled, links: devScaled.links.map((l) => ({ ...l, bandwidth: l.bandwidth / link })) };
      const cost = link === 1 ? devCost : costModelFor(model, scaled, { profiles });
      scaling = { device, link };
      const now = link === 1 ? predicted : estimateOn(scaled, cost, running);
      let best: Awaited<ReturnType<typeof propose>>;
      const t0 = performance.now();
      try {
        best = await propose(scaled, cost);
      } catch {
        return undefined;
      }
      planMs = performance.now() - t0;
      const next = best.split;
      const moveBytes = movedBytes(model, running, next);
      const bandwidth = Math.min(...scaled.links.map((l) => l.bandwidth));
      const changed = Object.entries(device)
        .filter(([, f]) => Math.abs(f - 1) > 0.2)
        .map(([d, f]) => `${d} ${f.toFixed(2)}x`);
      if (link > 1.2) changed.push(`links ${link.toFixed(1)}x slower`);
      const fid = opts.fidelity;
      const enc = fid
        ? `; encodings ${encodingsLine(running.encodings)} -> ${encodingsLine(next.encodings)} under ${formatBudget(fid.budget)}`
        : "";
      return {
        running: now.throughput,
        best: best.throughput,
        moveBytes,
        bandwidth: Number.isFinite(bandwidth) ? bandwidth : 125e6,
        runningKey: splitKey(running),
        bestKey: splitKey(next),
        ...(fid
          ? { encodings: { from: encodingsLine(running.encodings), to: encodingsLine(next.encodings) } }
          : {}),
        why: `${changed.length > 0 ? `measured: ${changed.join(", ")}` : "measured costs"}${enc}`,
        build: async () => {
          const d = await opts.exportSplit(next, best.throughput);
          running = next;
          return d;
        },
      };
    },
  };
}

/** A deployment's split (Deployable.split) as a LiveSplit, or undefined when it does not carry one. */
function liveSplitOf(x: unknown): LiveSplit | undefined {
  const s = x as
    | {
        assignment?: StageAssignment;
        devices?: ReadonlyArray<string | readonly string[]>;
        encodings?: readonly TensorEncoding[];
        encoderStage?: boolean;
      }
    | undefined;
  if (!s?.assignment?.stageOf || !Array.isArray(s.devices)) return undefined;
  return {
    assignment: s.assignment,
    devices: s.devices.map((g) => (typeof g === "string" ? [g] : [...g])),
    ...(s.encodings && s.encodings.length > 0 ? { encodings: s.encodings } : {}),
    ...(s.encoderStage ? { encoderStage: true } : {}),
  };
}

/** A split's identity: each node's stage, each stage's devices and the encodings (equal keys: the same split). */
export function splitKey(s: LiveSplit): string {
  return `${s.devices.map((g) => g.join("+")).join(">")}:${s.assignment.stageOf.join(",")}:${encodingsLine(s.encodings)}`;
}

/** `a int8, b float16`, or `float32` when nothing is encoded. */
export function encodingsLine(e: readonly TensorEncoding[] | undefined): string {
  const sent = (e ?? []).filter((x) => x.encoding !== "float32");
  return sent.length === 0 ? "float32" : sent.map((x) => `${x.tensor} ${x.encoding}`).join(", ");
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
