import { checkOutputFile, writeOutputFile } from "../output-file.js";
import { costModelFor } from "../cost/cost-factory.js";
import { loadProfile, type Profile } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import { OBJECTIVES, type Objective } from "../partition/constraints.js";
import { benchCluster, benchReplacer } from "../harness/bench.js";
import { emulatedCosts } from "../harness/emulated-profiles.js";
import { printBench } from "./bench-table.js";
import {
  bool,
  type Command,
  intFlag,
  list,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  str,
} from "./command.js";
import { clusterFromFlags } from "./cluster-flag.js";
import { FIDELITY_FLAGS, FIDELITY_USAGE, fidelityFromFlags, planUnderBudget } from "./fidelity-flags.js";
import { loadForCli } from "./load.js";
import { profileCallbacks } from "./local-profiles.js";
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

const USAGE = `usage: cleave bench <model.onnx | zoo:NAME> [--cluster c.yaml] [--objective throughput|latency|energy] [model input flags]
                    [--profile device=profile.json ...] [--requests N] [--rounds R] [--baselines] [--no-replicas] [--no-parallel] [--no-corun] [-o bench.json] [--json]
                    [--fidelity top1=0.99 | --max-rel-error X [--encodings ...] [--calibration a.npy,...]]
                    [--workers name=host:port,... --token T | --testbed [STATE]]

Plans the model on the cluster, then runs, side by side with the same inputs, the planned pipeline and the
whole model on the best single device, on real workers, and prints throughput, latency percentiles, the
speed-up and the planner's prediction against the measurement. Without --cluster it uses the shipped local
cluster (two devices of one pinned CPU core each). Devices without a profile that are emulated here (cpus:)
are profiled on this machine once per model and cached (in $CLEAVE_CACHE_DIR, else $XDG_CACHE_HOME/cleave or
~/.cache/cleave); one whose cpuShare is below its thread count gets that profile with its
times multiplied by threads / cpuShare. When two or more devices are emulated here, how much they slow each
other down and what their workers spend per byte moved are measured first and priced into the plan
(--no-corun skips that). The plan may replicate stages (a stage run by several devices, requests shared by
speed); it is then also measured against the best plan of one device per stage, and --no-replicas plans
pipelines only. With --objective latency, a plan whose row tiles run on several devices at once is also
measured ("tiles") when the planner predicts it lower (--no-parallel: not). --baselines also runs every baseline split of the planner for real. The
configurations take turns in R rounds (default 3) of N / R requests, so a machine whose speed drifts slows
all of them alike; the speed-up is the ratio of the pooled throughputs shown. Latency is measured twice: for
requests sent one at a time (what the prediction describes) and with the pipeline full. The efficiency is the
share of the time the busiest device spent in onnxruntime; each stage of the plan also runs alone.
With a fidelity budget the model is also planned under it (as 'cleave plan --fidelity') and that plan runs in
the same rounds, its cut tensors encoded ("under budget"): the table adds its encodings (bytes before and
after), the fidelity measured at planning on held-out inputs, its speed-up over the float32 plan and the
largest difference of its outputs from the whole model over every request (reported, not checked: it is
lossy). When the cluster declares an inputDevice, every configuration then sends the input through it, so
the float32 and the encoded plans both pay for its link as planned.
-o writes the results (with the plan) as JSON, for 'cleave report --bench'. --workers and --testbed run on
running workers instead of local ones: with --testbed, those of 'cleave testbed up c.yaml' (give the same
cluster with --cluster), e.g. cleave bench zoo:efficientnet_b0 --cluster c.yaml --testbed --baselines
${WORKER_FLAGS_USAGE}
${FIDELITY_USAGE}

Model input flags:
${MODEL_INPUT_USAGE}`;

export { emulatedProfile } from "./local-profiles.js";

/** `cleave bench`. */
export const benchCommand: Command = {
  name: "bench",
  summary: "plan, then measure the pipeline against the whole model on the best single device",
  usage: USAGE,
  async run(argv, io) {
    const tb = takeTestbedFlag(argv);
    const { values, positionals } = parseFlags("bench", tb.argv, {
      cluster: { type: "string" },
      objective: { type: "string" },
      profile: { type: "string", multiple: true },
      requests: { type: "string" },
      rounds: { type: "string" },
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
      baselines: { type: "boolean" },
      "no-replicas": { type: "boolean" },
      "no-parallel": { type: "boolean" },
      ...MODEL_INPUT_FLAGS,
      "no-corun": { type: "boolean" },
      ...WORKER_FLAGS,
      ...FIDELITY_FLAGS,
    });
    const path = onePositional("bench", positionals, "model file");
    const out = str(values, "output");
    if (out !== undefined) checkOutputFile(out);
    const objective = (str(values, "objective") ?? "throughput") as Objective;
    if (!OBJECTIVES.includes(objective)) {
      throw new ArgumentError(`--objective: expected one of ${OBJECTIVES.join(", ")}, got '${objective}'`, {
        field: "objective",
      });
    }
    const fidelity = fidelityFromFlags(values);
    const declared = clusterFromFlags(str(values, "cluster"));
    const remote = remoteWorkers(values, tb.stateFile, declared);
    const ep = clusterEndpointWorkers(
      declared,
      declared.devices.map((d) => d.name),
      remote.workers,
    );
    checkWorkerNames(
      remote.workers,
      declared.devices.map((d) => d.name),
      `cluster ${declared.name}`,
      ep.fromCluster,
    );
    const rerun = rerunInTestbed("bench", argv, remote, io);
    if (rerun) return rerun;
    const model = await loadForCli(path, modelInputs(values), io);
    const json = bool(values, "json");
    const bar = progress(io, !json);
    const profiles: Record<string, Profile> = {};
    for (const item of list(values, "profile") ?? []) {
      const m = /^([^=]+)=(.+)$/.exec(item);
      if (!m)
        throw new ArgumentError(`--profile: expected device=profile.json, got '${item}'`, {
          field: "profile",
        });
      profiles[m[1]] = loadProfile(m[2]);
    }
    const measured = await emulatedCosts(model, declared, profiles, {
      ...profileCallbacks(io, bar),
      coRun: !bool(values, "no-corun"),
    });
    const { cluster, coRun } = measured;
    const cost = costModelFor(model, cluster, { profiles: measured.profiles });
    const replicas = !bool(values, "no-replicas");
    const underBudget = fidelity
      ? await planUnderBudget(model, cluster, cost, fidelity, { objective, modelPath: path, replicas }, (s) =>
          bar.step(s),
        )
      : undefined;
    const bench = await benchCluster(model, cluster, cost, {
      objective,
      requests: intFlag("requests", str(values, "requests"), 200),
      rounds: intFlag("rounds", str(values, "rounds"), 3),
      modelPath: path,
      baselines: bool(values, "baselines"),
      replicas,
      parallel: !bool(values, "no-parallel"),
      workers: ep.workers,
      token: remote.token,
      ...(remote.tls ? { tls: remote.tls } : {}),
      linkDelayMs: remote.linkDelayMs,
      ...(underBudget ? { fidelity: underBudget } : {}),
      onStep: (s) => bar.step(s),
    });
    bar.done();
    const result = coRun ? { ...bench, coRun } : bench;
    if (out !== undefined) writeOutputFile(out, `${JSON.stringify(result, benchReplacer, 2)}\n`);
    if (json) io.out(JSON.stringify(result, benchReplacer));
    else printBench(io, result);
    return result.rows.some((r) => r.measured.failed > 0) ? 1 : 0;
  },
};
