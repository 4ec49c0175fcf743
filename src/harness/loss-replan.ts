import { remainingCluster } from "../cluster/remaining.js";
import type { Cluster } from "../cluster/types.js";
import { costModelFor } from "../cost/cost-factory.js";
import { estimateSplit } from "../cost/estimate.js";
import { type Profile, scaleProfile } from "../cost/profile.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { planForCluster } from "../partition/plan-cluster.js";
import type { PlanAfterLoss, PlannedSplit } from "../runtime/coordinator/loss-plan.js";
import type { LiveScaling } from "./live-replan.js";

/** Options of {@link lossReplanner}. */
export interface LossReplanOptions {
  model: AnalyzedModel;
  /** The whole cluster the first split was planned for. */
  cluster: Cluster;
  /**
   * Profiles the first split was planned with, or a function that gives them (asked once, at the first loss:
   * a run that loses no device never profiles).
   */
  profiles: Readonly<Record<string, Profile>> | (() => Promise<Readonly<Record<string, Profile>>>);
  /** The current measured scaling of costs (live re-partitioning's `lastScaling`); none: the costs as planned. */
  scaling?: () => LiveScaling | undefined;
  /** The plan must beat the reassignment's predicted throughput by this fraction to be deployed (default 0.05). */
  margin?: number;
}

/**
 * The costs of `cluster` under a measured scaling: each device's compute time (its profile, else its nominal
 * rates) multiplied by its factor, every link's bandwidth divided by the link factor.
 */
export function scaledCosts(
  cluster: Cluster,
  profiles: Readonly<Record<string, Profile>>,
  scaling: LiveScaling | undefined,
): { cluster: Cluster; profiles: Record<string, Profile> } {
  const f = (name: string) => scaling?.device[name] ?? 1;
  const out: Record<string, Profile> = {};
  for (const d of cluster.devices) {
    const p = profiles[d.name];
    if (p)
      out[d.name] =
        f(d.name) === 1 ? p : scaleProfile(p, f(d.name), `measured live: ${f(d.name).toFixed(2)}x`);
  }
  const link = scaling?.link ?? 1;
  return {
    profiles: out,
    cluster: {
      ...cluster,
      devices: cluster.devices.map((d) =>
        profiles[d.name] !== undefined || f(d.name) === 1
          ? d
          : {
              ...d,
              macsPerSecond: { ...d.macsPerSecond, float32: d.macsPerSecond.float32 / f(d.name) },
              memoryBandwidth: d.memoryBandwidth / f(d.name),
            },
      ),
      links: link === 1 ? cluster.links : cluster.links.map((l) => ({ ...l, bandwidth: l.bandwidth / link })),
    },
  };
}

/**
 * The planner's split for throughput over the devices `alive` of `cluster`, priced with `profiles` under
 * `scaling`, one device per stage; with `fallback` (a split over the same devices), also that split's predicted
 * throughput under the same costs (undefined when it cannot be priced).
 */
export function planOverDevices(
  model: AnalyzedModel,
  cluster: Cluster,
  profiles: Readonly<Record<string, Profile>>,
  alive: readonly string[],
  scaling?: LiveScaling,
  fallback?: PlannedSplit,
): { plan: PlannedSplit & { throughput: number }; fallbackThroughput?: number } {
  const reduced = remainingCluster(cluster, alive);
  const kept = Object.fromEntries(Object.entries(profiles).filter(([d]) => alive.includes(d)));
  const scaled = scaledCosts(reduced, kept, scaling);
  const cost = costModelFor(model, scaled.cluster, { profiles: scaled.profiles });
  const best = planForCluster(model, scaled.cluster, cost, { objective: "throughput", replicas: false });
  let fallbackThroughput: number | undefined;
  if (fallback)
    try {
      fallbackThroughput = estimateSplit(
        model,
        scaled.cluster,
        cost,
        fallback.assignment.stageOf,
        fallback.devices.map((g) => (typeof g === "string" ? g : g[0])),
      ).throughput;
    } catch {
      fallbackThroughput = undefined;
    }
  return {
    plan: { assignment: best.assignment, devices: best.devices, throughput: best.throughput },
    ...(fallbackThroughput !== undefined ? { fallbackThroughput } : {}),
  };
}

/**
 * The re-plan after a loss, built above the runtime (run-split's `planAfterLoss`): plans again for throughput
 * over the devices that remain with the current cost estimates (the profiles the first split was planned with,
 * scaled by what live re-partitioning measured when it runs), and keeps the runtime's reassignment (resolves
 * undefined) unless the plan is predicted faster by `margin`, or merges stages and is not predicted slower.
 * Throws as the planner does when nothing fits.
 */
export function lossReplanner(opts: LossReplanOptions): PlanAfterLoss {
  const margin = opts.margin ?? 0.05;
  let profiles: Promise<Readonly<Record<string, Profile>>> | undefined;
  const given = opts.profiles;
  return async (alive, why) => {
    profiles ??= typeof given === "function" ? given() : Promise.resolve(given);
    const { plan, fallbackThroughput } = planOverDevices(
      opts.model,
      opts.cluster,
      await profiles,
      alive,
      opts.scaling?.(),
      why.fallback,
    );
    if (fallbackThroughput === undefined || plan.throughput > fallbackThroughput * (1 + margin)) return plan;
    // Within the margin, a plan that merges stages (fewer of them, on no device the reassignment does not use)
    // and is not priced slower is still taken: a stage boundary on one device costs a session run's overhead,
    // the framing and dispatch of the cut tensor and the fusions lost across it, which the costs price only in
    // part (EfficientNet-B0 in two stages on one core: 11-21% below the whole model on it, priced 1.6% below).
    const used = new Set(why.fallback.devices.flat());
    const merges =
      plan.assignment.count < why.fallback.assignment.count && plan.devices.flat().every((d) => used.has(d));
    return merges && plan.throughput >= fallbackThroughput ? plan : undefined;
  };
}
