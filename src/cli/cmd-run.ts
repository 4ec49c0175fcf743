import type { Cluster } from "../cluster/types.js";
import type { TensorEncoding } from "../onnx/encoding.js";
import { Calibrator, calibrationInputs, formatFidelity, measureCodecTimes } from "../partition/calibrate.js";
import { formatBudget } from "../partition/encodings.js";
import type { PlanEncodings } from "../partition/plan-encodings.js";
import { costModelFor } from "../cost/cost-factory.js";
import {
  FIDELITY_FLAGS,
  type FidelityRequest,
  fidelityFromFlags,
  planUnderBudget,
} from "./fidelity-flags.js";
import { ArgumentError } from "../errors.js";
import type { StageAssignment } from "../partition/assign.js";
import { resolveSplit } from "../export/split.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { planToAssignment, readPlan, stageDevices } from "../partition/plan.js";
import { modelForPlan } from "../partition/plan-parallel.js";
import { stageLabel } from "../partition/plan-cluster.js";
import {
  type LiveFidelity,
  type LiveScaling,
  type LiveSplit,
  liveReplanner,
} from "../harness/live-replan.js";
import { lossReplanner } from "../harness/loss-replan.js";
import { withLocalProfiles as harnessLocalProfiles } from "../harness/emulated-profiles.js";
import type { Profile } from "../cost/profile.js";
import type { LossPlanChoice } from "../runtime/coordinator/loss-plan.js";
import { type RunSplitOptions, type RunSplitResult, runSplit } from "../runtime/coordinator/run-split.js";
import type { RecoveryEvent, ReplanEvent } from "../runtime/control/service.js";
import {
  bool,
  type CliIO,
  type Command,
  intFlag,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  numberFlag,
  type ParsedFlags,
  planInputs,
  str,
} from "./command.js";
import { fmtBytes, style, table } from "./format.js";
import { clusterForPlan } from "./cluster-flag.js";
import { loadForCli } from "./load.js";
import { localProfileLine, withLocalProfiles } from "./local-profiles.js";
import { progress } from "./progress.js";
import {
  checkWorkerNames,
  clusterEndpointWorkers,
  remoteWorkers,
  rerunInTestbed,
  takeTestbedFlag,
  WORKER_FLAGS,
  WORKER_FLAGS_USAGE,
} from "./testbed-flag.js";

const USAGE = `usage: cleave run <model.onnx | zoo:NAME> (--plan plan.json | --stages k | --cuts a,b | --fidelity B)
                  [--cluster c.yaml] [--workers name=host:port,... --token T | --testbed [STATE]]
                  [--requests N] [--in-flight K] [--deadline MS] [--heartbeat-ms MS] [--no-recover]
                  [--adapt [--adapt-threshold F] [--adapt-hold MS]] [--json] [model input flags]

Deploys the stages of a split on workers, streams requests through them as a pipeline and reports
throughput and latency percentiles. Devices with 'cpus' in the cluster file get a local worker pinned to
those CPUs, started and stopped by cleave; --workers names running workers (cleave worker) instead, and
--testbed the workers of an emulated cluster ('cleave testbed up c.yaml' with the same --cluster).
  --plan       a plan from 'cleave plan' (stages and their devices)
  --stages/--cuts  split without a plan; stages go to the cluster's devices in order (consecutive
               stages share a device when there are more stages than devices)
  --fidelity   plan the split for throughput, cut and encodings together, under this budget (as plan's
               --fidelity; --max-rel-error, --encodings and --calibration too)
  --requests   measured requests (default 200), after a warm-up
  --in-flight  requests in flight at once (default 2 per stage)
  --heartbeat-ms  a worker silent this long (beyond a stage run it announced) is lost (default 1000);
               cleave then plans again over the devices left (or moves its stages to them when that
               plan is no faster), runs the unfinished requests again there, and re-plans with the
               worker when it answers again
  --no-recover a lost worker fails the requests in flight instead
  --deadline   each request's deadline, ms (default 30000)
  --adapt      live re-partitioning: stage compute times and the pipeline's throughput are measured as it
               runs (smoothed), the costs rescaled by them, and the split switched between requests when
               the best plan beats the running one by more than --adapt-threshold (default 0.15) for
               --adapt-hold ms (default 3000) and the gain over a minute pays for the stage bytes it ships;
               under a fidelity budget (--fidelity, or a --plan that records one) it re-plans cut and
               encodings together under the same budget
A run that a fault or SIGINT/SIGTERM ends early still reports what it measured so far (with --json, the
same document with 'stopped': why, naming the device) and exits 1 (a fault) or 130/143 (a signal); the stage
files it wrote to the temporary folder are removed on every exit.
${WORKER_FLAGS_USAGE}

Model input flags:
${MODEL_INPUT_USAGE}`;

/** Resolves the split and device list of `run`/`bench` from --plan, or --stages/--cuts over the cluster's devices. */
export function splitFromFlags(
  model: AnalyzedModel,
  values: Record<string, unknown>,
  cluster: Cluster,
): {
  assignment: StageAssignment;
  devices: string[][];
  /** The plan's share of each replica, by stage and device (replicated stages only). */
  weights?: (stage: number, device: string) => number | undefined;
} {
  const planPath = values.plan as string | undefined;
  if (planPath !== undefined) {
    const plan = readPlan(planPath);
    return {
      assignment: planToAssignment(model, plan),
      devices: plan.stages.map(stageDevices),
      weights: (stage, device) => plan.stages[stage]?.replicas?.find((r) => r.device === device)?.share,
    };
  }
  const cuts = (values.cuts as string[] | undefined)?.flatMap((c) => c.split(","));
  const stages = values.stages as string | undefined;
  if ((cuts === undefined) === (stages === undefined)) {
    throw new ArgumentError("give exactly one of --plan, --stages or --cuts", { field: "plan" });
  }
  const assignment = resolveSplit(model, cuts ? { cuts } : { stages: intFlag("stages", stages, 2) });
  const rest = cluster.devices.filter((d) => d.name !== cluster.inputDevice).map((d) => d.name);
  const order = [cluster.inputDevice, ...rest];
  // More stages than devices: consecutive stages share a device, spread as evenly as possible.
  const used = Math.min(order.length, assignment.count);
  const devices = Array.from({ length: assignment.count }, (_, i) => [
    order[Math.floor((i * used) / assignment.count)],
  ]);
  return { assignment, devices };
}

/** One line for a recovery event, as the progress line shows it. */
export function recoveryLine(e: RecoveryEvent): string {
  return `lost ${e.device} (${e.cause}: ${e.message}); detected ${e.detectedMs.toFixed(0)} ms and first request answered ${e.restoredMs.toFixed(0)} ms after the fault, ${e.replayed} request(s) run again`;
}

/** One line for the choice of split after a loss or a rejoin. */
export function lossPlanLine(c: LossPlanChoice): string {
  return c.used === "planned"
    ? `after the ${c.reason} of ${c.device}: the planner's split (${c.why}, planned in ${c.planMs.toFixed(0)} ms)`
    : `after the ${c.reason} of ${c.device}: the stages moved to the devices left (${c.why})`;
}

/** One line for a re-plan event. */
export function replanLine(e: ReplanEvent): string {
  const tp = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)}/s` : "?");
  return `re-planned (${e.reason}): ${tp(e.fromThroughput)} -> ${tp(e.toThroughput)}, switched in ${e.switchMs.toFixed(0)} ms${e.pauseMs !== undefined ? ` (longest pause ${e.pauseMs.toFixed(0)} ms)` : ""}, ${fmtBytes(e.shippedBytes)} of stages sent`;
}

/** Table rows of a measured run. */
export function runRows(label: string, r: RunSplitResult): string[] {
  const l = r.report.latencyMs;
  return [
    label,
    r.replicaGroups.map(stageLabel).join(" > "),
    `${r.report.throughput.toFixed(1)}/s`,
    `${l.p50.toFixed(1)} ms`,
    `${l.p95.toFixed(1)} ms`,
    `${l.p99.toFixed(1)} ms`,
    `${r.report.failed}`,
  ];
}

/** `cleave run`. */
export const runCommand: Command = {
  name: "run",
  summary: "deploy a split on workers and stream requests through it as a pipeline",
  usage: USAGE,
  async run(argv, io: CliIO) {
    const tb = takeTestbedFlag(argv);
    const { values, positionals } = parseFlags("run", tb.argv, {
      plan: { type: "string" },
      stages: { type: "string" },
      cuts: { type: "string", multiple: true },
      cluster: { type: "string" },
      ...WORKER_FLAGS,
      requests: { type: "string" },
      "in-flight": { type: "string" },
      "heartbeat-ms": { type: "string" },
      "no-recover": { type: "boolean" },
      deadline: { type: "string" },
      adapt: { type: "boolean" },
      "adapt-threshold": { type: "string" },
      "adapt-hold": { type: "string" },
      ...FIDELITY_FLAGS,
      json: { type: "boolean" },
      ...MODEL_INPUT_FLAGS,
    });
    const path = onePositional("run", positionals, "model file");
    const planPath = str(values, "plan");
    const plan = planPath === undefined ? undefined : readPlan(planPath);
    const cluster = clusterForPlan(str(values, "cluster"), plan, planPath);
    const remote = remoteWorkers(values, tb.stateFile, cluster);
    const rerun = rerunInTestbed("run", argv, remote, io);
    if (rerun) return rerun;
    const fromPlan = plan === undefined ? {} : planInputs(plan, planPath);
    // A tiled plan's stages are of the model tiled as the plan records.
    const original = await loadForCli(path, modelInputs(values, fromPlan), io);
    const model = await modelForPlan(original, plan ?? {});
    const json = bool(values, "json");
    const fid = fidelityFromFlags(values);
    if (fid && (planPath !== undefined || values.stages !== undefined || values.cuts !== undefined))
      throw new ArgumentError(
        "--fidelity: run plans the split under the budget itself; give it without --plan, --stages or --cuts",
        { field: "fidelity" },
      );
    const budgeted = fid ? await planForRun(model, cluster, fid, path, io, bar0(io, json)) : undefined;
    const { assignment, devices, weights } = budgeted
      ? { assignment: budgeted.plan.assignment, devices: budgeted.plan.devices, weights: undefined }
      : splitFromFlags(model, values, cluster);
    const planEnc = budgeted?.plan.plan.encodings ?? plan?.encodings;
    const encodings = budgeted
      ? budgeted.encodings
      : (plan?.encodings?.tensors as TensorEncoding[] | undefined);
    const ep = clusterEndpointWorkers(cluster, devices.flat(), remote.workers);
    checkWorkerNames(
      remote.workers,
      devices.flat(),
      str(values, "plan") ?? `the split over cluster ${cluster.name}`,
      ep.fromCluster,
    );
    const heartbeatMs = intFlag("heartbeat-ms", str(values, "heartbeat-ms"), 1000);
    const requests = intFlag("requests", str(values, "requests"), 200);
    const inFlight =
      values["in-flight"] === undefined ? undefined : intFlag("in-flight", str(values, "in-flight"), 2);
    const deadlineMs = intFlag("deadline", str(values, "deadline"), 30000);
    const adapt = bool(values, "adapt")
      ? await adaptFromFlags(
          model,
          cluster,
          { assignment, devices, ...(encodings ? { encodings } : {}) },
          values,
          io,
          bar0(io, json),
          {
            profiles: budgeted?.profiles,
            fidelity: budgeted
              ? {
                  budget: fid!.budget,
                  calibrator: budgeted.calibrator,
                  codecTimes: budgeted.codecTimes,
                  ...(fid!.encodings ? { encodings: fid!.encodings } : {}),
                }
              : plan?.encodings
                ? await recordedFidelity(model, plan.encodings, planPath!)
                : undefined,
          },
        )
      : undefined;
    const bar = progress(io, !json);
    const result = await withInterrupt((signal) =>
      runSplit(model, assignment, devices, cluster, {
        requests,
        inFlight,
        deadlineMs,
        signal,
        workers: ep.workers,
        token: remote.token,
        ...(remote.tls ? { tls: remote.tls } : {}),
        linkDelayMs: remote.linkDelayMs,
        modelPath: path,
        // A tiled plan's model is a rewrite: every request is checked against the model as given.
        ...(model !== original ? { reference: original } : {}),
        replicaWeights: weights,
        ...(encodings && encodings.length > 0 ? { encodings } : {}),
        heartbeatMs,
        recover: !bool(values, "no-recover"),
        ...(adapt ? { adapt: adapt.adapt } : {}),
        planAfterLoss: {
          plan: lossReplanner({
            model,
            cluster,
            // Without --adapt, devices are profiled (or their cached profiles read) only once one is lost.
            profiles:
              adapt?.profiles ??
              (() =>
                harnessLocalProfiles(model, cluster, {}, { onProfile: (n) => io.err(localProfileLine(n)) })),
            ...(adapt ? { scaling: adapt.scaling } : {}),
          }),
          onChoice: (c) => io.err(`cleave: ${lossPlanLine(c)}`),
        },
        onStep: (s) => bar.step(s),
        onRecovery: (e) => io.err(`cleave: ${recoveryLine(e)}`),
        onReplan: (e) => io.err(`cleave: ${replanLine(e)}`),
      }),
    );
    bar.done();
    const code = exitCode(result);
    if (result.stopped) io.err(`error: ${result.stopped.message}`);
    if (json) {
      io.out(JSON.stringify(result));
      return code;
    }
    const st = style(io.isTTY);
    io.out(
      table([["run", "devices", "throughput", "p50", "p95", "p99", "failed"], runRows("plan", result)], st),
    );
    // Nothing completed (an unreachable worker): the error above says why; per-request figures would be NaN.
    if (result.report.completed > 0)
      io.out(
        st.dim(
          `busy per request (onnxruntime, with the worker's framing): ${Object.entries(result.stageBusyMs)
            .map(([d, ms]) => {
              const sv = result.stageServiceMs[d];
              return `${d} ${ms.toFixed(2)} ms${sv !== undefined ? ` (${sv.toFixed(2)})` : ""}`;
            })
            .join(", ")}; ${fmtBytes(result.bytesPerRequest)} through the coordinator per request; ` +
            (result.referenceChecked !== undefined
              ? `outputs vs the unsplit model: ${result.maxRelativeDiff.toExponential(1)} relative at most over ${result.referenceChecked} requests`
              : `outputs vs whole model: ${result.maxRelativeDiff.toExponential(1)} relative`),
        ),
      );
    if (planEnc)
      io.out(
        st.dim(
          `encoded cut tensors: ${planEnc.tensors.map((t) => `${t.tensor} ${t.encoding} ${fmtBytes(t.bytes)} -> ${fmtBytes(t.encodedBytes)}`).join(", ") || "none"}; planned fidelity on held-out inputs: ${formatFidelity(planEnc.fidelity.held)}; ` +
            `stage outputs sent per request (measured): ${Object.entries(result.stageOutputBytes)
              .map(([d, b]) => `${d} ${fmtBytes(b)}`)
              .join(", ")}`,
        ),
      );
    const replicated = result.replicas.filter((r) => (result.replicaGroups[r.stage]?.length ?? 0) > 1);
    if (replicated.length > 0)
      io.out(
        st.dim(
          `replicas: ${replicated.map((r) => `stage ${r.stage} on ${r.device} ${r.completed} requests (${r.throughput.toFixed(1)}/s)`).join(", ")}`,
        ),
      );
    for (const e of result.recoveries) io.out(st.yellow(recoveryLine(e)));
    for (const e of result.replans) io.out(st.yellow(replanLine(e)));
    for (const e of result.losses)
      io.out(
        st.yellow(
          `lost replica ${e.device} (stage ${e.stages.join(", ")}): ${e.message}; ${e.replayed} request(s) replayed on the others`,
        ),
      );
    return code;
  },
};

/** A progress display for the profiling before a run (the run's own comes after). */
function bar0(io: CliIO, json: boolean) {
  return progress(io, !json);
}

/**
 * `--adapt`: checks its flags (one line each: a cluster of one device, a threshold outside (0, 1)), profiles the
 * emulated devices as plan does, and builds the live re-planner over the running split.
 */
async function adaptFromFlags(
  model: AnalyzedModel,
  cluster: Cluster,
  running: LiveSplit,
  values: Record<string, unknown>,
  io: CliIO,
  bar: ReturnType<typeof progress>,
  given: { profiles?: Record<string, Profile>; fidelity?: LiveFidelity },
): Promise<{
  adapt: NonNullable<RunSplitOptions["adapt"]>;
  profiles: Record<string, Profile>;
  scaling: () => LiveScaling | undefined;
}> {
  if (cluster.devices.length < 2)
    throw new ArgumentError(
      `--adapt: cluster ${cluster.name} has one device (${cluster.devices[0]?.name ?? "none"}); re-partitioning needs two or more`,
      { field: "adapt" },
    );
  const threshold = numberFlag("adapt-threshold", str(values as ParsedFlags["values"], "adapt-threshold"));
  if (threshold !== undefined && !(threshold > 0 && threshold < 1))
    throw new ArgumentError(`--adapt-threshold: expected a number in (0, 1), got ${threshold}`, {
      field: "adapt-threshold",
    });
  const holdMs = intFlag("adapt-hold", str(values as ParsedFlags["values"], "adapt-hold"), 3000, 0);
  const profiles = given.profiles ?? (await withLocalProfiles(model, cluster, {}, io, bar));
  bar.done();
  const graphInputs = new Set(model.graph.inputs.map((v) => v.name));
  let live: ReturnType<typeof liveReplanner> | undefined;
  return {
    profiles,
    scaling: () => live?.lastScaling(),
    adapt: {
      policy: { ...(threshold !== undefined ? { threshold } : {}), holdMs },
      evaluate: (exportSplit) => {
        live = liveReplanner({
          model,
          cluster,
          profiles,
          running: {
            ...running,
            encoderStage: (running.encodings ?? []).some(
              (e) => e.encoding !== "float32" && graphInputs.has(e.tensor),
            ),
          },
          ...(given.fidelity ? { fidelity: given.fidelity } : {}),
          exportSplit: (split, throughput) => exportSplit(split, throughput),
        });
        return live.evaluate;
      },
    },
  };
}

/** `--fidelity` of run: profiles the emulated devices and plans for throughput under the budget. */
async function planForRun(
  model: AnalyzedModel,
  cluster: Cluster,
  f: FidelityRequest,
  modelPath: string,
  io: CliIO,
  bar: ReturnType<typeof progress>,
) {
  const profiles = await withLocalProfiles(model, cluster, {}, io, bar);
  const cost = costModelFor(model, cluster, { profiles });
  const fp = await planUnderBudget(
    model,
    cluster,
    cost,
    f,
    { objective: "throughput", modelPath, replicas: false },
    (s) => bar.step(s),
  );
  bar.done();
  return { ...fp, profiles };
}

/**
 * The budget an encoded plan was made under, for `--adapt` to re-plan under: its calibration inputs are made
 * again (seeded); a plan calibrated on given files, or one that records no budget, is a one-line error.
 */
async function recordedFidelity(
  model: AnalyzedModel,
  e: PlanEncodings,
  planPath: string,
): Promise<LiveFidelity> {
  if (!e.budget || Object.values(e.budget).every((v) => v === undefined))
    throw new ArgumentError(
      `--adapt: ${planPath} records no fidelity budget for its encodings; plan it again with --fidelity, or run with --fidelity instead of --plan`,
      { file: planPath, field: "encodings.budget" },
    );
  if (e.calibration !== "generated")
    throw new ArgumentError(
      `--adapt: ${planPath} was calibrated on given inputs, which it does not keep; run with --fidelity ${formatBudget(e.budget)} --calibration FILES instead of --plan`,
      { file: planPath, field: "encodings.calibration" },
    );
  return {
    budget: e.budget,
    calibrator: new Calibrator(model, calibrationInputs(model, undefined, e.inputs.calibration)),
    codecTimes: await measureCodecTimes(),
  };
}

/** Signals that stop a run early, with the exit code of a process they would have ended (128 + number). */
const STOP_SIGNALS: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Runs `f` with a signal that aborts on SIGINT or SIGTERM (its reason: the signal's name), so the run stops,
 * cleans up and reports; a second signal exits at once (the stage files still go: run-split removes them at
 * exit, and the local workers are killed at exit).
 */
async function withInterrupt<T>(f: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const handlers = Object.keys(STOP_SIGNALS).map((sig) => {
    const handler = () => {
      if (ac.signal.aborted) process.exit(STOP_SIGNALS[sig]);
      ac.abort(new Error(sig));
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  try {
    return await f(ac.signal);
  } finally {
    for (const [sig, handler] of handlers) process.off(sig, handler);
  }
}

/** 0 when every request was answered; 130/143 when a signal stopped the run; else 1. */
function exitCode(r: RunSplitResult): number {
  if (r.stopped?.reason === "interrupted") return STOP_SIGNALS[r.stopped.signal ?? "SIGINT"] ?? 130;
  return r.stopped || r.report.failed > 0 ? 1 : 0;
}
