import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cluster, Device } from "../../cluster/types.js";
import { ArgumentError, CleaveError, errorMessage } from "../../errors.js";
import type { StageAssignment } from "../../partition/assign.js";
import { deployedWeights, encodedSplit } from "../../export/encode-stages.js";
import type { TensorEncoding } from "../../onnx/encoding.js";
import { writeSplit } from "../../export/write.js";
import { inputFeeds } from "../../ir/input-values.js";
import type { AnalyzedModel } from "../../ir/analyze.js";
import { createSession, type ort } from "../../onnx/ort.js";
import {
  type Controller,
  type Deployable,
  type RecoveryEvent,
  type ReplanEvent,
  startController,
} from "../control/service.js";
import { reassignStages } from "../control/reassign.js";
import { type LossPlanChoice, type PlanAfterLoss, planThenReassign } from "./loss-plan.js";
import { ReferenceCheck } from "./reference-check.js";
import { type Adaptation, type AdaptOptions, startAdaptation } from "../control/adapt.js";
import type { AdaptPolicy } from "../control/adapt-policy.js";
import { summarizeLatencies } from "../latency.js";
import { type LocalCluster, type LocalDevice, startLocalWorkers } from "./local-cluster.js";
import type { RunMode } from "../worker/stage-runner.js";
import type { Pipeline, ReplicaLossEvent, RunReport, StageLoad, Tensors, WorkerAddress } from "./pipeline.js";
import type { StatsReplyMsg } from "../transport/protocol.js";
import type { TlsConfig } from "../transport/transport.js";

/** Options of {@link runSplit}. */
export interface RunSplitOptions {
  /** Measured requests (default 200). */
  requests?: number;
  /** Requests run first and not measured (default: 2 per stage, at least 4). */
  warmup?: number;
  /**
   * ...and for at least this long, ms (default 1000). A fresh worker takes ~80 requests (~0.5 s) to reach its
   * steady speed: measured on EfficientNet-B0's first stage, 129/s over its first 40 requests, ~200/s from
   * the 100th on (onnxruntime's time per run fell from 5.7 to 4.1 ms).
   */
  warmupMs?: number;
  /** Requests in flight at once (default 2 per stage). */
  inFlight?: number;
  /** Workers already running, by device name; devices not listed with `cpus` get a local worker. */
  workers?: readonly WorkerAddress[];
  /** Token of the given workers. */
  token?: string;
  /** Where the local workers this run starts run their stages (`cleave worker --runs`; default auto). */
  runs?: RunMode;
  /**
   * User-space one-way delay per link, ms, by sender and receiver name (device names, and "coordinator"),
   * passed to deploy(); the emulated testbed's link latencies.
   */
  linkDelayMs?: (from: string, to: string) => number;
  /** Path of the source model, recorded in the manifest. */
  modelPath?: string;
  /** Deadline of each request, ms (default 30000). */
  deadlineMs?: number;
  /**
   * Stops the run: no request is started once it aborts, the split is undeployed, the workers it started are
   * stopped, and {@link runSplit} returns what it measured so far with `stopped` set (`interrupted`).
   */
  signal?: AbortSignal;
  /** The inputs to send (default: seeded random inputs of the model's input types). */
  feeds?: Tensors;
  /** Check the first request's outputs against the whole model in this process (default true). */
  verify?: boolean;
  /**
   * The unsplit model the split was planned from, when `model` is a rewrite of it (a tiled plan's model):
   * every request's outputs (warm-up and measured) are then compared with this model's on the same inputs,
   * and `maxRelativeDiff` is the largest difference over all of them (`referenceChecked` counts them).
   */
  reference?: AnalyzedModel;
  /** Called with a short description of each step (deploying, warming up, measuring). */
  onStep?: (what: string) => void;
  /** Relative speed of each replica of a replicated stage (e.g. the plan's shares); see DeployOptions. */
  replicaWeights?: (stage: number, device: string) => number | undefined;
  /** TLS to the given workers (started with the same `--tls`); every device then needs a given worker. */
  tls?: TlsConfig;
  /**
   * Cut tensors sent encoded (a plan's `encodings.tensors`): the stage models encode and decode them (see
   * `encodeStages`); a graph input sent encoded adds a stage on the cluster's input device that only encodes.
   */
  encodings?: readonly TensorEncoding[];
  /** Graph inputs read off the input device go through a stage there (see `encodeStages`'s `relayInputs`). */
  relayInputs?: boolean;
  /** Failure detector, ms (default 1000; see Pipeline.startHeartbeat). */
  heartbeatMs?: number;
  /** Recover from a lost device by re-planning over the rest (default true). */
  recover?: boolean;
  /**
   * Re-planning after a loss or a rejoin: a split over the devices `alive` (stage assignment and the devices
   * of each stage), which is exported and deployed. Default: the first split's stages with each lost device's
   * stages moved to a device left ({@link reassignStages}): no export, and stage files the workers hold are
   * not sent again.
   */
  replan?: (
    alive: readonly string[],
    why: { reason: "loss" | "rejoin"; device: string },
  ) => Promise<{ assignment: StageAssignment; devices: StageDevices[]; throughput?: number }>;
  /**
   * A planner asked after a loss or a rejoin, over the devices left (see {@link PlanAfterLoss}; e.g.
   * `lossReplanner` in harness/): its split is exported and deployed, and when it fails, takes longer than
   * `budgetMs` (default 2000) or is not better, the default reassignment is. Not used with `replan`, nor with
   * encoded cut tensors (their plan chose the cut).
   */
  planAfterLoss?: { plan: PlanAfterLoss; budgetMs?: number; onChoice?: (c: LossPlanChoice) => void };
  /** Called with each recovery as it happens. */
  onRecovery?: (e: RecoveryEvent) => void;
  /** Called with each re-plan (rejoin or switch) as it happens. */
  onReplan?: (e: ReplanEvent) => void;
  /**
   * Live re-partitioning (off by default): measured costs are fed back to a planner above the runtime, and the
   * split is switched when a better plan holds (see control/adapt.ts). `evaluate` is made once the first split
   * runs, with the exporter that writes a split's stage files for a switch.
   */
  adapt?: {
    evaluate: (exportSplit: SplitExporter) => AdaptOptions["evaluate"];
    policy?: Partial<AdaptPolicy>;
    intervalMs?: number;
  };
}

/** Writes a split's stage files (beside the first split's) for a switch; `throughput` is its prediction. */
export type SplitExporter = (
  split: {
    assignment: StageAssignment;
    devices: readonly StageDevices[];
    /** Cut tensors sent encoded (the encoder stage is added when a graph input is). */
    encodings?: readonly TensorEncoding[];
  },
  throughput?: number,
) => Promise<Deployable>;

/** A stage's device, or its replica group (each device runs the whole stage; requests are spread over them). */
export type StageDevices = string | readonly string[];

/** One replica's share of a measured round. */
export interface ReplicaMeasurement {
  stage: number;
  device: string;
  /** Requests it completed in the round. */
  completed: number;
  /** Requests through it that ended without an answer in the round (see ReplicaStats.failed). */
  failed: number;
  /** Its completed requests per second of the round's wall time. */
  throughput: number;
  /** Its smoothed time per request at the end of the round, ms (undefined before its first completion). */
  serviceMs?: number;
  alive: boolean;
}

/**
 * Where each device of a split gets its worker: the cluster devices it runs on (`used`, each once), the
 * workers given for them, and the local workers to start for the rest, which must be emulated here (`cpus:`).
 * One-line errors name a device that is not in the cluster, one with neither a worker nor `cpus:`, and one
 * that would get a local worker (which listens without TLS) when `tls` is asked.
 */
export function workersFor(
  cluster: Cluster,
  names: readonly string[],
  workers: readonly WorkerAddress[] | undefined,
  tls = false,
): { used: Device[]; given: Map<string, WorkerAddress>; toStart: LocalDevice[] } {
  const byName = new Map(cluster.devices.map((d) => [d.name, d]));
  const used: Device[] = [...new Set(names)].map((name) => {
    const d = byName.get(name);
    if (!d) throw new ArgumentError(`device '${name}' is not in cluster ${cluster.name}`, { device: name });
    return d;
  });
  const given = new Map((workers ?? []).map((w) => [w.name, w]));
  const toStart = used.filter((d) => !given.has(d.name));
  for (const d of toStart)
    if (d.cpus === undefined)
      throw new ArgumentError(
        `device '${d.name}' has no running worker: give --workers ${d.name}=host:port or its endpoint: in the cluster file, or cpus: [...] to emulate it here`,
        { device: d.name },
      );
  if (tls && toStart.length > 0)
    throw new ArgumentError(
      `--tls: device '${toStart[0].name}' would get a local worker, which listens without TLS; give its worker with --workers`,
      { device: toStart[0].name, field: "tls" },
    );
  return {
    used,
    given,
    toStart: toStart.map((d) => ({ name: d.name, cpus: d.cpus, threads: d.threads ?? d.cpus?.length ?? 1 })),
  };
}

/** The whole model as one stage. */
export function wholeModel(model: AnalyzedModel): StageAssignment {
  const stageOf = Int32Array.from(model.graph.nodes, (n) => (n.isConstant ? -1 : 0));
  return { stageOf, count: 1 };
}

/** One measured round of a deployed split. */
export interface SplitMeasurement {
  report: RunReport;
  /** Time each worker spent in onnxruntime per request, ms, by device (from the workers' own counters). */
  stageBusyMs: Record<string, number>;
  /**
   * Wall time each worker spent on its runs per request, ms, by device: onnxruntime, framing the outputs and any
   * CPU time withheld meanwhile (StageStats.serviceMs); the gap to stageBusyMs is the worker's own cost per run,
   * or a quota. Devices whose workers do not report it are absent.
   */
  stageServiceMs: Record<string, number>;
  /**
   * CPU time each worker process used per request, ms, by device: onnxruntime plus receiving, framing and
   * sending tensors (all of the process's threads).
   */
  stageCpuMs: Record<string, number>;
  /** CPU time each worker process used inside onnxruntime per request, ms, by device. */
  stageOrtCpuMs: Record<string, number>;
  /** Bytes of the stage outputs each worker framed per request, zero-packed ones as packed, by device. */
  stageOutputBytes: Record<string, number>;
  /** CPU time this process (the coordinator and client) used per request, ms. */
  coordinatorCpuMs: number;
  /** Bytes the coordinator sent and received per request. */
  bytesPerRequest: number;
  /** Per replica of every stage (one entry per stage when nothing is replicated), in stage then group order. */
  replicas: ReplicaMeasurement[];
  /** Replicas lost during the round. */
  losses: ReplicaLossEvent[];
  /** Recoveries from lost devices reported during the round (see RecoveryEvent). */
  recoveries: RecoveryEvent[];
  /** Re-plans (a device back, a switch) during the round. */
  replans: ReplanEvent[];
}

/** Why a run ended before its requests were all sent and answered. */
export interface RunStopped {
  /** `error`: a fault of the deployment (a worker lost, a stage failing to load); `interrupted`: the signal. */
  reason: "error" | "interrupted";
  /** One line, naming the device where it is known. */
  message: string;
  /** The device at fault, when one is. */
  device?: string;
  /** For `interrupted`: the abort reason's message (the CLI's is the signal's name, e.g. `SIGINT`). */
  signal?: string;
  /** The step the run was in: deploying (and warming up) or measuring. */
  during: "deploying" | "measuring";
}

/** What {@link runSplit} measured. */
export interface RunSplitResult extends SplitMeasurement {
  /** Set when the run ended early; the counts are those so far. */
  stopped?: RunStopped;
  /** Device of each stage (the first of its group when replicated). */
  devices: string[];
  /** Every device of each stage, in group order. */
  replicaGroups: string[][];
  /** How each stage was deployed (bytes, chunks, time). */
  stageLoads: StageLoad[];
  /**
   * Largest difference between the pipeline's outputs for the first request and the whole model run in one
   * onnxruntime session on the same inputs, relative to the largest output magnitude (NaN with verify off).
   */
  maxRelativeDiff: number;
  /** Requests whose outputs were compared with `reference` (absent without one). */
  referenceChecked?: number;
}

/** A split deployed on its workers, warmed up and checked, ready to be measured round after round. */
export interface DeployedSplit {
  /** Device of each stage (the first of its group when replicated). */
  readonly devices: string[];
  /** Every device of each stage, in group order. */
  readonly replicaGroups: string[][];
  /**
   * True when stage 0 was added on the input device to encode or relay graph inputs (`encodeStages`): the
   * deployed stages (`devices`, the measurements' `replicas`) are then the assignment's shifted by one.
   */
  readonly encoderStage: boolean;
  /** The pipeline deployed now (its stats and loss events); it changes after a recovery. */
  readonly pipeline: Pipeline;
  /** The control loop that owns the deployment: recoveries, re-plans, switches. */
  readonly controller: Controller;
  /** See {@link RunSplitResult.stageLoads}. */
  readonly stageLoads: StageLoad[];
  /** See {@link RunSplitResult.maxRelativeDiff} (with a reference: over every request so far). */
  readonly maxRelativeDiff: number;
  /** See {@link RunSplitResult.referenceChecked}. */
  readonly referenceChecked?: number;
  /**
   * Streams `requests` requests (default: the options' count) and measures them, with `inFlight` requests in
   * flight (default: the deployment's; 1 sends each request alone, for an unloaded latency).
   */
  measure(requests?: number, inFlight?: number): Promise<SplitMeasurement>;
  /** Undeploys, stops the workers it started and removes the stage files. */
  close(): Promise<void>;
}

/**
 * Runs a split of `model` on the devices of `cluster` as a pipeline and measures it: writes the stage models,
 * starts a pinned local worker for each emulated device (one with `cpus`; every device of a replica group)
 * unless a running worker is given,
 * deploys, warms up, streams `requests` requests with `inFlight` in flight, checks the first request's
 * outputs against the whole model, and stops every worker it started.
 */
export async function runSplit(
  model: AnalyzedModel,
  assignment: StageAssignment,
  devices: readonly StageDevices[],
  cluster: Cluster,
  opts: RunSplitOptions = {},
): Promise<RunSplitResult> {
  let split: DeployedSplit;
  try {
    split = await deploySplit(model, assignment, devices, cluster, opts);
  } catch (err) {
    // Bad input is the caller's to report; a fault once things started still gets a report.
    if (err instanceof ArgumentError) throw err;
    return notMeasured(devices, opts, stoppedBy(err, opts.signal, "deploying"));
  }
  try {
    const m = await split.measure();
    const report = { ...m.report, latencySamplesMs: undefined };
    const lost = m.report.failed > 0 ? split.pipeline.broken?.error : undefined;
    const stopped: RunStopped | undefined = opts.signal?.aborted
      ? stoppedBy(opts.signal.reason, opts.signal, "measuring")
      : lost
        ? stoppedBy(lost, undefined, "measuring")
        : undefined;
    return {
      devices: split.devices,
      replicaGroups: split.replicaGroups,
      stageLoads: split.stageLoads,
      maxRelativeDiff: split.maxRelativeDiff,
      ...(split.referenceChecked !== undefined ? { referenceChecked: split.referenceChecked } : {}),
      ...m,
      report,
      ...(stopped ? { stopped } : {}),
    };
  } finally {
    await split.close();
  }
}

/** Why a run stopped: the signal when it aborted, else the fault `err` (its device when it names one). */
function stoppedBy(err: unknown, signal: AbortSignal | undefined, during: RunStopped["during"]): RunStopped {
  if (signal?.aborted) {
    const why = errorMessage(signal.reason);
    return { reason: "interrupted", message: `interrupted (${why})`, signal: why, during };
  }
  const device = err instanceof CleaveError ? err.context.device : undefined;
  return { reason: "error", message: errorMessage(err), ...(device !== undefined ? { device } : {}), during };
}

/** The report of a run that stopped before anything was measured: every count 0. */
function notMeasured(
  devices: readonly StageDevices[],
  opts: RunSplitOptions,
  stopped: RunStopped,
): RunSplitResult {
  const groups = devices.map((g) => (typeof g === "string" ? [g] : [...g]));
  return {
    devices: groups.map((g) => g[0]),
    replicaGroups: groups,
    stageLoads: [],
    maxRelativeDiff: Number.NaN,
    report: {
      requests: opts.requests ?? 200,
      completed: 0,
      failed: 0,
      errors: [],
      wallMs: 0,
      throughput: 0,
      latencyMs: summarizeLatencies([]),
    },
    stageBusyMs: {},
    stageServiceMs: {},
    stageCpuMs: {},
    stageOrtCpuMs: {},
    stageOutputBytes: {},
    coordinatorCpuMs: 0,
    bytesPerRequest: 0,
    replicas: [],
    losses: [],
    recoveries: [],
    replans: [],
    stopped,
  };
}

/**
 * The first half of {@link runSplit}: writes the stage models, starts the local workers it needs, deploys,
 * checks the first request against the whole model and warms up. The caller measures as many rounds as it
 * likes (several splits can stay deployed at once on distinct workers, so rounds of each can alternate) and
 * must close it.
 */
export async function deploySplit(
  model: AnalyzedModel,
  assignment: StageAssignment,
  devices: readonly StageDevices[],
  cluster: Cluster,
  opts: RunSplitOptions = {},
): Promise<DeployedSplit> {
  if (devices.length !== assignment.count) {
    throw new ArgumentError(`${assignment.count} stages but ${devices.length} devices given`);
  }
  const planned = devices.map((g, i) => {
    const list = typeof g === "string" ? [g] : [...g];
    if (list.length === 0)
      throw new ArgumentError(`devices[${i}]: stage ${i} has an empty replica group`, { stage: i });
    const twice = list.find((d, k) => list.indexOf(d) !== k);
    if (twice !== undefined)
      throw new ArgumentError(`devices[${i}]: device '${twice}' is listed twice in stage ${i}'s group`, {
        device: twice,
        stage: i,
      });
    return list;
  });
  const encodeOpts = { inputDevice: cluster.inputDevice, relayInputs: opts.relayInputs };
  const encoded = encodedSplit(model, assignment, planned, opts.encodings ?? [], encodeOpts);
  const stages = encoded.stages;
  const groups = encoded.devices;
  const { used, given, toStart } = workersFor(cluster, groups.flat(), opts.workers, opts.tls !== undefined);
  const dir = mkdtempSync(join(tmpdir(), "cleave-run-"));
  // The stage files go on every exit: close() and every failure below remove them, and an exit before that
  // (a second Ctrl-C, process.exit) removes them here.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  let local: LocalCluster | undefined;
  let controller: Controller | undefined;
  let adaptation: Adaptation | undefined;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    try {
      await adaptation?.stop();
      await controller?.close();
      await local?.stop();
    } finally {
      removeDir();
      process.off("exit", removeDir);
    }
  };
  try {
    const split = join(dir, "split");
    const manifest = writeSplit(model, stages, split, {
      modelPath: opts.modelPath ?? model.graph.source,
      devices: groups,
      encodings: opts.encodings,
    });
    opts.onStep?.(`starting ${toStart.length} local worker(s)`);
    local =
      toStart.length > 0
        ? await startLocalWorkers(toStart, { token: opts.token, runs: opts.runs })
        : undefined;
    opts.signal?.throwIfAborted();
    const deadlineMs = opts.deadlineMs ?? 30000;
    const signal = opts.signal;
    const workers = [...given.values(), ...(local?.workers ?? [])];
    const inFlight = opts.inFlight ?? 2 * Math.max(stages.length, used.length);
    opts.onStep?.(`deploying ${stages.length} stage(s)`);
    let plans = 0;
    const exportSplit: SplitExporter = async (next, throughput) => {
      const out = join(dir, `replan-${++plans}`);
      const enc = encodedSplit(model, next.assignment, next.devices, next.encodings ?? [], encodeOpts);
      const m = writeSplit(model, enc.stages, out, {
        modelPath: opts.modelPath ?? model.graph.source,
        devices: enc.devices,
        ...(next.encodings && next.encodings.length > 0 ? { encodings: next.encodings } : {}),
      });
      return {
        manifest: m,
        dir: out,
        ...(throughput !== undefined ? { throughput } : {}),
        split: { ...next, encoderStage: enc.encoderStage },
      };
    };
    const replan = opts.replan;
    const c = await startController({ manifest, dir: split }, workers, {
      deploy: {
        token: local?.token ?? opts.token,
        maxInFlight: inFlight,
        // Connecting and loading keep their own 30 s: a short request deadline must not cut a deploy short.
        timeoutMs: 30000,
        linkDelayMs: opts.linkDelayMs,
        // The caller's stage indices are the plan's; an encoder stage put first shifts the deployed ones by one.
        replicaWeights: deployedWeights(opts.replicaWeights, encoded.encoderStage),
        ...(opts.tls ? { tls: opts.tls } : {}),
      },
      deadlineMs,
      ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
      ...(opts.recover !== undefined ? { recover: opts.recover } : {}),
      replan: replan
        ? async (alive, why): Promise<Deployable> => {
            const next = await replan(alive, why);
            return exportSplit(next, next.throughput);
          }
        : opts.planAfterLoss && (opts.encodings ?? []).length === 0 && stages.length === assignment.count
          ? planThenReassign(opts.planAfterLoss.plan, { manifest, dir: split, assignment }, exportSplit, {
              ...(opts.planAfterLoss.budgetMs !== undefined ? { budgetMs: opts.planAfterLoss.budgetMs } : {}),
              ...(opts.planAfterLoss.onChoice ? { onChoice: opts.planAfterLoss.onChoice } : {}),
            })
          : async (alive) => ({ manifest: reassignStages(manifest, alive), dir: split }),
    });
    controller = c;
    if (opts.onRecovery) c.on("recovery", opts.onRecovery);
    if (opts.onReplan) c.on("replan", opts.onReplan);
    const p = c;
    const feeds = opts.feeds ?? inputFeeds(model);
    signal?.throwIfAborted();
    const first = await p.infer(feeds, { deadlineMs, signal });
    const check =
      opts.reference && opts.verify !== false
        ? await ReferenceCheck.create(opts.reference, feeds)
        : undefined;
    const onOutputs = check ? (out: Tensors) => void check.add(out) : undefined;
    const firstDiff = check
      ? check.add(first)
      : opts.verify === false
        ? Number.NaN
        : await compareWithWhole(model, feeds, first);
    const warmup = opts.warmup ?? Math.max(4, 2 * stages.length);
    const warmupMs = opts.warmupMs ?? 1000;
    opts.onStep?.(`warming up (${warmup} requests, at least ${warmupMs} ms)`);
    const t0 = performance.now();
    await p.runMany({ count: warmup, feeds: () => feeds }, { inFlight, deadlineMs, signal, onOutputs });
    while (performance.now() - t0 < warmupMs && signal?.aborted !== true)
      await p.runMany({ count: 10, feeds: () => feeds }, { inFlight, deadlineMs, signal, onOutputs });
    signal?.throwIfAborted();
    if (opts.adapt)
      adaptation = startAdaptation(c, {
        evaluate: opts.adapt.evaluate(exportSplit),
        ...(opts.adapt.policy ? { policy: opts.adapt.policy } : {}),
        ...(opts.adapt.intervalMs !== undefined ? { intervalMs: opts.adapt.intervalMs } : {}),
      });
    return {
      devices: groups.map((g) => g[0]),
      replicaGroups: groups,
      encoderStage: encoded.encoderStage,
      get pipeline() {
        return c.pipeline;
      },
      controller: c,
      stageLoads: [...c.pipeline.stageLoads],
      get maxRelativeDiff() {
        return check ? check.maxRelativeDiff : firstDiff;
      },
      get referenceChecked() {
        return check?.checked;
      },
      measure: async (count = opts.requests ?? 200, flight = inFlight) => {
        // Stats are best effort: after a fault the workers left may not all answer, and the counts still count.
        const before = await p.workerStats().catch(() => [] as StatsReplyMsg[]);
        const sentBefore = p.stats();
        opts.onStep?.(`measuring (${count} requests)`);
        const pipelineBefore = c.pipeline;
        const lossesBefore = c.pipeline.events.length;
        const recoveriesBefore = c.recoveries.length;
        const replansBefore = c.replans.length;
        const cpuBefore = process.cpuUsage();
        const report = await p.runMany(
          { count, feeds: () => feeds },
          { inFlight: flight, deadlineMs, keepLatencies: true, signal, onOutputs },
        );
        const cpu = process.cpuUsage(cpuBefore);
        const after = await p.workerStats(2000).catch(() => [] as StatsReplyMsg[]);
        const sentAfter = p.stats();
        // After a recovery the counters are the new deployment's: nothing to subtract.
        const same = c.pipeline === pipelineBefore;
        const done = Math.max(1, report.completed);
        const busy = (r?: StatsReplyMsg) => (r?.stages ?? []).reduce((s, st) => s + st.computeMs, 0);
        const ortCpu = (r?: StatsReplyMsg) => (r?.stages ?? []).reduce((s, st) => s + st.computeCpuMs, 0);
        const stageBusyMs: Record<string, number> = {};
        const stageServiceMs: Record<string, number> = {};
        // Undefined when a stage of the worker does not report it (an older worker).
        const service = (r: StatsReplyMsg) =>
          r.stages.every((st) => st.serviceMs !== undefined)
            ? r.stages.reduce((s, st) => s + (st.serviceMs ?? 0), 0)
            : undefined;
        const stageCpuMs: Record<string, number> = {};
        const stageOrtCpuMs: Record<string, number> = {};
        const stageOutputBytes: Record<string, number> = {};
        const outBytes = (r?: StatsReplyMsg) =>
          (r?.stages ?? []).reduce((s, st) => s + (st.outputBytes ?? 0), 0);
        for (const a of after) {
          const b = same ? before.find((r) => r.worker === a.worker) : undefined;
          stageBusyMs[a.worker] = (busy(a) - busy(b)) / done;
          const sa = service(a);
          const sb = b ? service(b) : 0;
          if (sa !== undefined && sb !== undefined) stageServiceMs[a.worker] = (sa - sb) / done;
          stageCpuMs[a.worker] = (a.cpuMs - (b?.cpuMs ?? 0)) / done;
          stageOrtCpuMs[a.worker] = (ortCpu(a) - ortCpu(b)) / done;
          stageOutputBytes[a.worker] = (outBytes(a) - outBytes(b)) / done;
        }
        const bytesPerRequest =
          (sentAfter.bytesSent +
            sentAfter.bytesReceived -
            (same ? sentBefore.bytesSent + sentBefore.bytesReceived : 0)) /
          done;
        const replicas: ReplicaMeasurement[] = sentAfter.stages.flatMap((st, i) =>
          st.replicas.map((r, k) => {
            const b = (same ? sentBefore.stages[i]?.replicas[k] : undefined) ?? { completed: 0, failed: 0 };
            return {
              stage: r.stage,
              device: r.device,
              completed: r.completed - b.completed,
              failed: r.failed - b.failed,
              throughput: report.wallMs > 0 ? ((r.completed - b.completed) * 1000) / report.wallMs : 0,
              ...(r.serviceMs !== undefined ? { serviceMs: r.serviceMs } : {}),
              alive: r.alive,
            };
          }),
        );
        return {
          report,
          replicas,
          losses: same ? c.pipeline.events.slice(lossesBefore) : [...c.pipeline.events],
          recoveries: c.recoveries.slice(recoveriesBefore),
          replans: c.replans.slice(replansBefore),
          stageBusyMs,
          stageServiceMs,
          stageCpuMs,
          stageOrtCpuMs,
          stageOutputBytes,
          coordinatorCpuMs: (cpu.user + cpu.system) / 1000 / done,
          bytesPerRequest,
        };
      },
      close: release,
    };
  } catch (err) {
    await release();
    throw err;
  }
}

async function compareWithWhole(model: AnalyzedModel, feeds: Tensors, got: Tensors): Promise<number> {
  const session = await createSession(model.graph.model);
  try {
    const want = await session.run(feeds);
    let diff = 0;
    let scale = 0;
    for (const name of Object.keys(want)) {
      const w = want[name] as ort.Tensor;
      const g = got[name];
      if (!g || w.type !== "float32") continue;
      const a = w.data as Float32Array;
      const b = g.data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(a[i]));
      }
    }
    return scale > 0 ? diff / scale : diff;
  } finally {
    await session.release();
  }
}
