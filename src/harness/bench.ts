import type { Cluster } from "../cluster/types.js";
import type { CostModel } from "../cost/cost-model.js";
import type { StageAssignment } from "../partition/assign.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { Objective, PlanConstraints } from "../partition/constraints.js";
import {
  type ClusterPlan,
  planForCluster,
  type RunnableSplit,
  stageLabel,
} from "../partition/plan-cluster.js";
import type { CoRunMeasurement } from "./corun.js";
import type { TensorEncoding } from "../onnx/encoding.js";
import type { PlanEncodings } from "../partition/plan-encodings.js";
import type { FidelityPlan } from "../partition/plan-fidelity.js";
import { tiledSplit } from "../partition/plan-parallel.js";
import { buildStages } from "../export/stage.js";
import { analyzeModel } from "../ir/analyze.js";
import {
  benchFindings,
  pipelineEfficiency,
  predictionError,
  speedupOf,
  transferTimeMs,
} from "./bench-figures.js";
import { type LatencySummary, summarizeLatencies } from "../runtime/latency.js";
import type { RunReport, WorkerAddress } from "../runtime/coordinator/pipeline.js";
import {
  type DeployedSplit,
  deploySplit,
  type ReplicaMeasurement,
  type SplitMeasurement,
  wholeModel,
} from "../runtime/coordinator/run-split.js";
import type { TlsConfig } from "../runtime/transport/transport.js";

/** Predicted and measured figures of one configuration. */
export interface BenchRow {
  /**
   * "plan" for the planned split, "single" for the whole model on the best single device, "pipeline" for the best
   * plan of one device per stage (when the plan replicates a stage), {@link BUDGET_ROW} for the plan under a
   * fidelity budget, else a baseline's name.
   */
  name: string;
  /** Devices of each stage: the device, or a replica group's devices joined by "+". */
  devices: string[];
  predicted: { throughput: number; latencyMs: number };
  /**
   * Pooled over the rounds: completed requests over their summed wall time, latencies of every request, all
   * with the pipeline full (requests back to back, several in flight).
   */
  measured: { throughput: number; latencyMs: LatencySummary; failed: number };
  /**
   * Requests sent one at a time (after the pipelined ones each round: a fifth as many, as many with objective
   * latency): the latency a request alone sees, which is what the predicted latency describes; the onnxruntime time per device in those runs, and the rest
   * of the latency, the communication ({@link transferTimeMs}), ms. `onThreads`: the stage loads (stage by
   * stage, each replica) its workers ran on a thread of their own rather than inline (`--runs`), when known.
   */
  alone: {
    latencyMs: LatencySummary;
    stageBusyMs: Record<string, number>;
    transferMs: number;
    onThreads?: number;
  };
  /** Measured throughput of each round, per second. */
  roundThroughputs: number[];
  /** (predicted - measured) / measured, for throughput ({@link predictionError}). */
  throughputError: number;
  /** (predicted - measured) / measured, for latency: the predicted latency against the p50 of requests sent alone. */
  latencyError: number;
  /**
   * Time each device spent in onnxruntime per request, ms. Every device a worker ran on counts: with graph
   * inputs relayed ({@link BenchBudget.relayInputs}) the input device's, for its encoder stage, too.
   */
  stageBusyMs: Record<string, number>;
  /** CPU time each device's worker process used per request (onnxruntime, framing, the kernel's copies), ms. */
  stageCpuMs: Record<string, number>;
  /** CPU time each device's worker process used inside onnxruntime per request, ms. */
  stageOrtCpuMs: Record<string, number>;
  /** Bytes of stage outputs each device's worker sent per request (zero-packed ones as packed). */
  stageOutputBytes: Record<string, number>;
  /** CPU time the coordinator (the client sending inputs and taking outputs) used per request, ms. */
  coordinatorCpuMs: number;
  /** Share of the wall time the busiest device spent in onnxruntime ({@link pipelineEfficiency}), 0..1. */
  pipelineEfficiency: number;
  /** Each stage run alone on its device (plan row only, when it has two or more stages). */
  standalone?: Array<{ stage: number; device: string; throughput: number; cpuMs: number }>;
  /** Largest difference of the outputs against the whole model, relative to the largest output. */
  maxRelativeDiff: number;
  /**
   * Each replica's share of the measured requests, pooled over the rounds (one entry per stage when none is
   * replicated), by the stage index of the row's plan: an encoder stage deployed before them has no entry.
   */
  replicas?: ReplicaMeasurement[];
}

/** Name of the row of the plan under a fidelity budget ({@link BenchOptions.fidelity}). */
export const BUDGET_ROW = "budget";

/** What a bench under a fidelity budget adds: the {@link BUDGET_ROW} row's encodings and figures. */
export interface BenchBudget {
  /**
   * The encodings as planned: the budget, the calibration inputs, each cut tensor's encoding with its bytes
   * per inference before and after, and the fidelity measured at planning on calibration and held-out inputs.
   */
  encodings: PlanEncodings;
  /**
   * Measured budget row over the float32 plan ("plan" row): pooled throughput, and the p50 latency of requests
   * sent alone (the plan's over the budget row's: above 1 is faster).
   */
  speedup: { throughput: number; latency: number };
  /** The same ratios predicted. */
  predictedSpeedup: { throughput: number; latency: number };
  /**
   * Largest difference of the budget row's outputs from the whole model's, over every request it ran,
   * relative to the largest output: the plan is lossy, so this is reported, not held to a tolerance.
   */
  maxRelativeDiff: number;
  /** Requests whose outputs were compared (warm-up and measured, every round). */
  referenceChecked: number;
  /**
   * True when every row sent the graph inputs through the cluster's input device (deploySplit's
   * `relayInputs`), so the float32 and the encoded plans both paid for its link as the planner priced it.
   */
  relayInputs: boolean;
}

/** What {@link benchCluster} returns. */
export interface BenchResult {
  model: string;
  cluster: string;
  objective: Objective;
  requests: number;
  /** Rounds the requests were split into; the configurations took turns, one round each. */
  rounds: number;
  plan: ClusterPlan;
  rows: BenchRow[];
  /**
   * Measured throughput of the plan over that of the best single device, both pooled over the rounds (the two
   * throughputs of the table; {@link speedupOf}).
   */
  speedup: number;
  /** The ratio of each round (plan and best single device measured one right after the other): its spread. */
  roundSpeedups: number[];
  predictedSpeedup: number;
  /** (predicted - measured) / measured speed-up. */
  speedupError: number;
  /** Configurations that measured faster than the plan, each with the likely reason ({@link benchFindings}). */
  findings: string[];
  /** How much the emulated devices slowed each other down, when measured and priced into the plan. */
  coRun?: CoRunMeasurement;
  /** Set with {@link BenchOptions.fidelity}: the {@link BUDGET_ROW} row's encodings, fidelity and speed-up. */
  budget?: BenchBudget;
}

/** Options of {@link benchCluster}. */
export interface BenchOptions {
  objective?: Objective;
  constraints?: PlanConstraints;
  /** Measured requests per configuration, over all rounds (default 200). */
  requests?: number;
  /**
   * Rounds (default 3): each configuration runs requests / rounds requests per round, taking turns, so that a
   * drift of the machine's speed hits all of them alike.
   */
  rounds?: number;
  /**
   * Also run each stage of the plan alone on its device, taking its turn in the rounds, for the pipeline
   * efficiency (default true).
   */
  standalone?: boolean;
  modelPath?: string;
  /** Also run every baseline that differs from the plan and the best single device. */
  baselines?: boolean;
  /** Also compute the Pareto front (recorded in the plan, for the report). */
  pareto?: boolean;
  /** Also plan replica groups (default true; false: one device per stage). */
  replicas?: boolean;
  /** With objective latency, also run the plan with tiles side by side when one predicts lower (default true). */
  parallel?: boolean;
  /** Workers already running, by device name (e.g. a testbed's); devices not listed get a local worker. */
  workers?: readonly WorkerAddress[];
  /** Token of the given workers. */
  token?: string;
  /** User-space one-way delay per link, ms, by sender and receiver name (see deploy()). */
  linkDelayMs?: (from: string, to: string) => number;
  /** TLS to the given workers (see RunSplitOptions). */
  tls?: TlsConfig;
  /**
   * A plan made under a fidelity budget (`planWithFidelity`), planned with the same objective and options:
   * measured in the same rounds as the {@link BUDGET_ROW} row, deployed with its encodings, every request
   * compared with the whole model. Its stages are not run alone. When the cluster declares an input device,
   * every row then relays the graph inputs through it ({@link BenchBudget.relayInputs}).
   */
  fidelity?: FidelityPlan;
  onStep?: (what: string) => void;
}

/** Rounds of one configuration pooled: throughput over the summed wall time, latencies of every request. */
function pool(ms: readonly SplitMeasurement[]): Omit<SplitMeasurement, "bytesPerRequest"> {
  const sum = (f: (m: SplitMeasurement) => number) => ms.reduce((s, m) => s + f(m), 0);
  const completed = sum((m) => m.report.completed);
  const wallMs = sum((m) => m.report.wallMs);
  // Per-request figures weighted by each round's completed requests.
  const perRequest = (f: (m: SplitMeasurement) => number) =>
    sum((m) => f(m) * m.report.completed) / Math.max(1, completed);
  const byDevice = (pick: (m: SplitMeasurement) => Record<string, number>) =>
    Object.fromEntries(Object.keys(pick(ms[0])).map((k) => [k, perRequest((m) => pick(m)[k] ?? 0)]));
  const report: RunReport = {
    ...ms[0].report,
    requests: sum((m) => m.report.requests),
    completed,
    failed: sum((m) => m.report.failed),
    errors: ms.flatMap((m) => m.report.errors).slice(0, 20),
    wallMs,
    throughput: wallMs > 0 ? (completed * 1000) / wallMs : 0,
    latencyMs: summarizeLatencies(ms.flatMap((m) => m.report.latencySamplesMs ?? [])),
    latencySamplesMs: undefined,
  };
  return {
    report,
    stageBusyMs: byDevice((m) => m.stageBusyMs),
    // Devices every round timed (a round after a recovery may lack one).
    stageServiceMs: Object.fromEntries(
      Object.keys(ms[0].stageServiceMs)
        .filter((k) => ms.every((m) => m.stageServiceMs[k] !== undefined))
        .map((k) => [k, perRequest((m) => m.stageServiceMs[k])]),
    ),
    stageCpuMs: byDevice((m) => m.stageCpuMs),
    stageOrtCpuMs: byDevice((m) => m.stageOrtCpuMs),
    stageOutputBytes: byDevice((m) => m.stageOutputBytes),
    coordinatorCpuMs: perRequest((m) => m.coordinatorCpuMs),
    replicas: ms[0].replicas.map((r, k) => {
      const done = sum((m) => m.replicas[k]?.completed ?? 0);
      const last = ms[ms.length - 1].replicas[k] ?? r;
      return {
        ...last,
        completed: done,
        failed: sum((m) => m.replicas[k]?.failed ?? 0),
        throughput: wallMs > 0 ? (done * 1000) / wallMs : 0,
      };
    }),
    losses: ms.flatMap((m) => m.losses),
    recoveries: ms.flatMap((m) => m.recoveries),
    replans: ms.flatMap((m) => m.replans),
  };
}

/** One thing measured in the rounds: a configuration of the model, or one plan stage alone on its device. */
interface Measured {
  name: string;
  model: AnalyzedModel;
  assignment: StageAssignment;
  /** Devices of each stage (a replica group for a replicated stage). */
  devices: string[][];
  /** Cut tensors sent encoded (the budget row). */
  encodings?: readonly TensorEncoding[];
  /** Set for a stage of the plan run alone: its index. */
  stage?: number;
}

/** A configuration of the rows: a runnable split, with the encodings of its cut tensors (the budget row). */
type Configuration = RunnableSplit & { encodings?: readonly TensorEncoding[] };

/** A measurement with the replicas of an encoder stage deployed first dropped and the rest renumbered. */
function planStages(m: SplitMeasurement): SplitMeasurement {
  return { ...m, replicas: m.replicas.filter((r) => r.stage > 0).map((r) => ({ ...r, stage: r.stage - 1 })) };
}

/**
 * Each stage of `c` as a one-stage split of its own model on its device, fed by the coordinator with the
 * model's given input values and seeded inputs of the stage's other input types.
 */
async function standaloneStages(model: AnalyzedModel, c: RunnableSplit): Promise<Measured[]> {
  const out: Measured[] = [];
  for (const stage of buildStages(model, c.assignment)) {
    // Model inputs with given values (a mask, token ids) keep them when the stage runs alone.
    const inputValues = Object.fromEntries(
      [...model.inputValues]
        .filter(([name]) => stage.inputs.includes(name))
        .map(([name, v]) => [
          name,
          { shape: v.shape, data: Array.from(v.data as ArrayLike<number | bigint>, Number), origin: name },
        ]),
    );
    const sm = await analyzeModel(stage.model, { source: `stage-${stage.index}`, inputValues });
    out.push({
      name: `stage ${stage.index} alone`,
      model: sm,
      assignment: wholeModel(sm),
      devices: [c.devices[stage.index]],
      stage: stage.index,
    });
  }
  return out;
}

/**
 * Plans `model` on `cluster`, then runs, with the same inputs and request count, the planned pipeline and the
 * whole model on the best single device (and the baselines when asked), on real workers (the given ones, else
 * local ones for emulated devices), and sets the measurements beside the predictions. The configurations take
 * turns in rounds; with local workers only, all of them stay deployed on their own worker processes across the
 * rounds, with given workers each round deploys afresh (a worker serves one deployment at a time).
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
    replicas: opts.replicas,
  });
  const requests = opts.requests ?? 200;
  const rounds = Math.max(1, Math.min(opts.rounds ?? 3, requests));
  // A replicated plan is set beside the best pipeline, so the bench shows what replicas add.
  const configs: Configuration[] = [plan, plan.single, ...(plan.pipeline ? [plan.pipeline] : [])];
  const tiles =
    objective === "latency" && opts.parallel !== false
      ? await tiledSplit(model, plan, cluster, cost)
      : undefined;
  if (tiles) configs.push(tiles);
  if (opts.baselines) {
    const key = (r: RunnableSplit) =>
      `${r.devices.map(stageLabel).join(",")}|${Array.from(r.assignment.stageOf).join(",")}`;
    const seen = new Set(configs.map(key));
    for (const b of plan.baselines) {
      if (!seen.has(key(b))) {
        seen.add(key(b));
        configs.push(b);
      }
    }
  }
  const fp = opts.fidelity;
  if (fp)
    configs.push({
      name: BUDGET_ROW,
      assignment: fp.plan.assignment,
      devices: fp.plan.devices,
      throughput: fp.plan.throughput,
      latency: fp.plan.latency,
      encodings: fp.encodings,
    });
  // Without a budget the coordinator sends inputs where they are read, as before; with one, both kinds of
  // plans pay for the input device's link, or a float32 plan reading the input elsewhere would look free of it.
  const relayInputs = fp !== undefined && cluster.inputDevice !== undefined;
  const alone =
    opts.standalone !== false && plan.devices.length > 1 ? await standaloneStages(model, plan) : [];
  const runs: Measured[] = [
    ...configs.map((c) => ({
      name: c.name,
      model: c.model ?? model,
      assignment: c.assignment,
      devices: c.devices,
      ...(c.encodings ? { encodings: c.encodings } : {}),
    })),
    ...alone,
  ];
  const given = new Set((opts.workers ?? []).map((w) => w.name));
  const keepDeployed = !runs.some((c) => c.devices.some((g) => g.some((d) => given.has(d))));
  const deployOf = (c: Measured, inFlight?: number) =>
    deploySplit(c.model, c.assignment, c.devices, cluster, {
      requests,
      ...(inFlight !== undefined ? { inFlight } : {}),
      modelPath: c.stage === undefined ? opts.modelPath : undefined,
      verify: c.stage === undefined,
      // A tiled or branch configuration runs a rewrite, an encoded one a lossy copy: check every request
      // against the model as given.
      ...(c.stage === undefined && (c.model !== model || c.encodings) ? { reference: model } : {}),
      ...(c.encodings ? { encodings: c.encodings } : {}),
      // Stages run alone are fed by the coordinator: nothing to relay.
      ...(relayInputs && c.stage === undefined ? { relayInputs: true } : {}),
      workers: opts.workers,
      token: opts.token,
      linkDelayMs: opts.linkDelayMs,
      ...(opts.tls ? { tls: opts.tls } : {}),
      onStep: (s) => opts.onStep?.(`${c.name}: ${s}`),
    });
  // A latency plan whose devices hold several stages sends its requests alone to a deployment of its own with
  // one request in flight, as a caller sending one request at a time gets: its workers then run stages that
  // follow one another on the I/O thread (deploy's `colocated`, `--runs auto`), where the pipelined
  // deployment's workers run them on threads (measured on ResNet-50's tiles: threads 10-25% slower alone).
  const apart = (c: Measured) =>
    objective === "latency" &&
    c.stage === undefined &&
    new Set(c.devices.flat()).size < c.devices.reduce((n, g) => n + g.length, 0);
  const deployed: Array<DeployedSplit | undefined> = runs.map(() => undefined);
  const deployedAlone: Array<DeployedSplit | undefined> = runs.map(() => undefined);
  // Stage loads run on threads where the requests alone were measured (undefined: a worker did not say).
  const onThreads: Array<number | undefined> = runs.map(() => undefined);
  // A measurement as the plan's stages: without the relay or encoder stage a deployment added first.
  const planOf = (d: DeployedSplit, m: SplitMeasurement) => (d.encoderStage ? planStages(m) : m);
  const threadsOf = (d: DeployedSplit) =>
    d.stageLoads.every((l) => l.runs !== undefined)
      ? d.stageLoads.filter((l) => l.runs === "thread").length
      : undefined;
  const measured: SplitMeasurement[][] = runs.map(() => []);
  const single: SplitMeasurement[][] = runs.map(() => []);
  const diffs: number[] = runs.map(() => Number.NaN);
  // Requests compared with the reference, over the deployments closed so far.
  const checked: number[] = runs.map(() => 0);
  try {
    for (let r = 0; r < rounds; r++) {
      const count = Math.ceil(requests / rounds);
      for (let i = 0; i < runs.length; i++) {
        opts.onStep?.(`round ${r + 1}/${rounds}: ${runs[i].name}`);
        deployed[i] ??= await deployOf(runs[i]);
        const d = deployed[i]!;
        measured[i].push(planOf(d, await d.measure(count)));
        // A latency plan is judged by its requests alone: as many as pipelined; else a fifth of them.
        const alone = objective === "latency" ? Math.max(2, count) : Math.max(2, Math.ceil(count / 5));
        if (runs[i].stage === undefined && !apart(runs[i])) {
          single[i].push(planOf(d, await d.measure(alone, 1)));
          onThreads[i] = threadsOf(d);
        }
        // With a reference the figure covers every request so far; without, the first request's check.
        diffs[i] = Number.isNaN(diffs[i]) ? d.maxRelativeDiff : Math.max(diffs[i], d.maxRelativeDiff);
        if (!keepDeployed) {
          checked[i] += d.referenceChecked ?? 0;
          deployed[i] = undefined;
          await d.close();
        }
        if (apart(runs[i])) {
          deployedAlone[i] ??= await deployOf(runs[i], 1);
          const a = deployedAlone[i]!;
          single[i].push(planOf(a, await a.measure(alone, 1)));
          onThreads[i] = threadsOf(a);
          diffs[i] = Math.max(diffs[i], a.maxRelativeDiff);
          if (!keepDeployed) {
            checked[i] += a.referenceChecked ?? 0;
            deployedAlone[i] = undefined;
            await a.close();
          }
        }
      }
    }
    for (const [i, d] of deployed.entries()) checked[i] += d?.referenceChecked ?? 0;
    for (const [i, d] of deployedAlone.entries()) checked[i] += d?.referenceChecked ?? 0;
  } finally {
    for (const d of [...deployed, ...deployedAlone]) await d?.close();
  }
  const standalone =
    alone.length > 0
      ? alone.map((a, j) => {
          const p = pool(measured[configs.length + j]);
          return {
            stage: a.stage!,
            device: stageLabel(a.devices[0]),
            throughput: p.report.throughput,
            cpuMs: a.devices[0].reduce((sum, d) => sum + (p.stageCpuMs[d] ?? 0), 0),
          };
        })
      : undefined;
  const rows: BenchRow[] = configs.map((c, i) => {
    const p = pool(measured[i]);
    const a = pool(single[i]);
    return {
      name: c.name,
      devices: c.devices.map(stageLabel),
      predicted: { throughput: c.throughput, latencyMs: c.latency * 1e3 },
      measured: { throughput: p.report.throughput, latencyMs: p.report.latencyMs, failed: p.report.failed },
      alone: {
        latencyMs: a.report.latencyMs,
        stageBusyMs: a.stageBusyMs,
        transferMs: transferTimeMs(a.report.latencyMs.mean, a.stageBusyMs),
        ...(onThreads[i] !== undefined ? { onThreads: onThreads[i] } : {}),
      },
      roundThroughputs: measured[i].map((m) => m.report.throughput),
      throughputError: predictionError(c.throughput, p.report.throughput),
      latencyError: predictionError(c.latency * 1e3, a.report.latencyMs.p50),
      stageBusyMs: p.stageBusyMs,
      stageCpuMs: p.stageCpuMs,
      stageOrtCpuMs: p.stageOrtCpuMs,
      stageOutputBytes: p.stageOutputBytes,
      coordinatorCpuMs: p.coordinatorCpuMs,
      pipelineEfficiency: pipelineEfficiency(p.report.throughput, p.stageBusyMs),
      standalone: i === 0 ? standalone : undefined,
      maxRelativeDiff: diffs[i],
      replicas: p.replicas,
    };
  });
  const roundSpeedups = rows[0].roundThroughputs.map((t, r) => speedupOf(t, rows[1].roundThroughputs[r]));
  const speedup = speedupOf(rows[0].measured.throughput, rows[1].measured.throughput);
  const predictedSpeedup = speedupOf(plan.throughput, plan.single.throughput);
  const b = rows.findIndex((row) => row.name === BUDGET_ROW);
  const budget: BenchBudget | undefined =
    fp && b >= 0
      ? {
          encodings: fp.plan.plan.encodings!,
          speedup: {
            throughput: speedupOf(rows[b].measured.throughput, rows[0].measured.throughput),
            latency: speedupOf(rows[0].alone.latencyMs.p50, rows[b].alone.latencyMs.p50),
          },
          predictedSpeedup: {
            throughput: speedupOf(fp.plan.throughput, plan.throughput),
            latency: speedupOf(plan.latency, fp.plan.latency),
          },
          maxRelativeDiff: rows[b].maxRelativeDiff,
          referenceChecked: checked[b],
          relayInputs,
        }
      : undefined;
  return {
    model: opts.modelPath ?? model.graph.source,
    cluster: cluster.name,
    objective,
    requests,
    rounds,
    plan,
    rows,
    speedup,
    roundSpeedups,
    predictedSpeedup,
    speedupError: predictionError(predictedSpeedup, speedup),
    // The budget row is another, lossy plan: it is set against the float32 plan in `budget`, not found out.
    findings: benchFindings({
      objective,
      rows: rows.filter((row) => row.name !== BUDGET_ROW),
      stages: plan.stages,
      cutBytes: plan.cutBytes,
    }),
    ...(budget ? { budget } : {}),
  };
}

/** JSON.stringify replacer for bench results: typed arrays (the plan's stage assignment) as plain arrays. */
export function benchReplacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) ? Array.from(value as Int32Array) : value;
}
