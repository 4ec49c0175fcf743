import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { Objective, PlanConstraints } from "../partition/constraints.js";
import { type ClusterPlan, planForCluster, type RunnableSplit } from "../partition/plan-cluster.js";
import type { CoRunMeasurement } from "./corun.js";
import type { LatencySummary } from "./latency.js";
import type { WorkerAddress } from "./pipeline.js";
import { runSplit } from "./run-split.js";

/** Predicted and measured figures of one configuration. */
export interface BenchRow {
  /** "plan" for the planned pipeline, "single" for the whole model on the best single device, else a baseline's name. */
  name: string;
  devices: string[];
  predicted: { throughput: number; latencyMs: number };
  measured: { throughput: number; latencyMs: LatencySummary; failed: number };
  /** (predicted - measured) / measured, for throughput. */
  throughputError: number;
  /** Time each device spent in onnxruntime per request, ms. */
  stageBusyMs: Record<string, number>;
  /** Measured throughput over the throughput of the slowest stage's measured busy time (1 = no pipeline loss). */
  pipelineEfficiency: number;
  /** Largest difference of the outputs against the whole model, relative to the largest output. */
  maxRelativeDiff: number;
}

/** What {@link benchCluster} returns. */
export interface BenchResult {
  model: string;
  cluster: string;
  objective: Objective;
  requests: number;
  plan: ClusterPlan;
  rows: BenchRow[];
  /** Measured throughput of the plan over that of the best single device. */
  speedup: number;
  predictedSpeedup: number;
  /** How much the emulated devices slowed each other down, when measured and priced into the plan. */
  coRun?: CoRunMeasurement;
}

/** Options of {@link benchCluster}. */
export interface BenchOptions {
  objective?: Objective;
  constraints?: PlanConstraints;
  requests?: number;
  modelPath?: string;
  /** Also run every baseline that differs from the plan and the best single device. */
  baselines?: boolean;
  /** Also compute the Pareto front (recorded in the plan, for the report). */
  pareto?: boolean;
  /** Workers already running, by device name (e.g. a testbed's); devices not listed get a local worker. */
  workers?: readonly WorkerAddress[];
  /** Token of the given workers. */
  token?: string;
  /** User-space one-way delay per link, ms, by sender and receiver name (see deploy()). */
  linkDelayMs?: (from: string, to: string) => number;
  onStep?: (what: string) => void;
}

/**
 * Plans `model` on `cluster`, then runs, with the same inputs and request count, the planned pipeline and the
 * whole model on the best single device, on real workers (the given ones, else local ones for emulated
 * devices), and sets the measurements beside the predictions.
 */
export async function benchCluster(
  model: AnalyzedModel,
  cluster: Cluster,
  cost: CostModel,
  opts: BenchOptions = {},
): Promise<BenchResult> {
  const objective = opts.objective ?? "throughput";
  const plan = planForCluster(model, cluster, cost, {
    objective,
    constraints: opts.constraints,
    modelPath: opts.modelPath,
    pareto: opts.pareto,
  });
  const requests = opts.requests ?? 200;
  const configs: RunnableSplit[] = [plan, plan.single];
  if (opts.baselines) {
    const key = (r: RunnableSplit) => `${r.devices.join(",")}|${Array.from(r.assignment.stageOf).join(",")}`;
    const seen = new Set(configs.map(key));
    for (const b of plan.baselines) {
      if (!seen.has(key(b))) {
        seen.add(key(b));
        configs.push(b);
      }
    }
  }
  const rows: BenchRow[] = [];
  for (const c of configs) {
    const r = await runSplit(model, c.assignment, c.devices, cluster, {
      requests,
      modelPath: opts.modelPath,
      workers: opts.workers,
      token: opts.token,
      linkDelayMs: opts.linkDelayMs,
      onStep: (s) => opts.onStep?.(`${c.name}: ${s}`),
    });
    const slowest = Math.max(...Object.values(r.stageBusyMs));
    rows.push({
      name: c.name,
      devices: c.devices,
      predicted: { throughput: c.throughput, latencyMs: c.latency * 1e3 },
      measured: { throughput: r.report.throughput, latencyMs: r.report.latencyMs, failed: r.report.failed },
      throughputError: (c.throughput - r.report.throughput) / r.report.throughput,
      stageBusyMs: r.stageBusyMs,
      pipelineEfficiency: slowest > 0 ? r.report.throughput / (1000 / slowest) : 0,
      maxRelativeDiff: r.maxRelativeDiff,
    });
  }
  return {
    model: opts.modelPath ?? model.graph.source,
    cluster: cluster.name,
    objective,
    requests,
    plan,
    rows,
    speedup: rows[0].measured.throughput / rows[1].measured.throughput,
    predictedSpeedup: plan.throughput / plan.single.throughput,
  };
}

/** JSON.stringify replacer for bench results: typed arrays (the plan's stage assignment) as plain arrays. */
export function benchReplacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) ? Array.from(value as Int32Array) : value;
}
