import { writeFileSync } from "node:fs";
import type { Device } from "../cluster/types.js";
import { costModelFor } from "../cost/cost-factory.js";
import { loadProfile, type Profile, profileModel, scaleProfile } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import { OBJECTIVES, type Objective } from "../partition/constraints.js";
import { benchCluster, benchReplacer } from "../runtime/bench.js";
import { withMeasuredCoRun } from "../runtime/corun.js";
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
import { loadForCli } from "./load.js";
import { progress } from "./progress.js";
import { remoteWorkers, rerunInTestbed, takeTestbedFlag, WORKER_FLAGS_USAGE } from "./testbed-flag.js";

const USAGE = `usage: cleave bench <model.onnx | zoo:NAME> [--cluster c.yaml] [--objective throughput|latency|energy] [model input flags]
                    [--profile device=profile.json ...] [--requests N] [--rounds R] [--baselines] [--no-corun] [-o bench.json] [--json]
                    [--workers name=host:port,... --token T | --testbed [STATE]]

Plans the model on the cluster, then runs, side by side with the same inputs, the planned pipeline and the
whole model on the best single device, on real workers, and prints throughput, latency percentiles, the
speed-up and the planner's prediction against the measurement. Without --cluster it uses the shipped local
cluster (two devices of one pinned CPU core each). Devices without a profile that are emulated here (cpus:)
are profiled on this machine first; one whose cpuShare is below its thread count gets that profile with its
times multiplied by threads / cpuShare. When two or more devices are emulated here, how much they slow each
other down and what their workers spend per byte moved are measured first and priced into the plan
(--no-corun skips that). --baselines also runs every baseline split of the planner for real. The
configurations take turns in R rounds (default 3) of N / R requests, so a machine whose speed drifts slows
all of them alike; the speed-up is the median of the rounds' ratios. Each stage of the plan also runs alone on
its device: the pipeline efficiency is the pipeline's throughput over the slowest of those.
-o writes the results (with the plan) as JSON, for 'cleave report --bench'. --workers and --testbed run on
running workers instead of local ones: with --testbed, those of 'cleave testbed up c.yaml' (give the same
cluster with --cluster), e.g. cleave bench zoo:efficientnet_b0 --cluster c.yaml --testbed --baselines
${WORKER_FLAGS_USAGE}

Model input flags:
${MODEL_INPUT_USAGE}`;

/**
 * The profile a device emulated here gets from `measured`, a profile of this machine at `threads` onnxruntime
 * threads: undefined when the device runs another number of threads; as measured when its `cpuShare` gives
 * each thread a core; else with every time multiplied by threads / cpuShare (a cgroup quota of 0.25 core
 * stretches a one-thread run 4x on average).
 */
export function emulatedProfile(d: Device, measured: Profile, threads: number): Profile | undefined {
  if ((d.threads ?? d.cpus?.length ?? 1) !== threads) return undefined;
  const share = d.cpuShare ?? threads;
  if (share >= threads) return measured;
  return scaleProfile(
    measured,
    threads / share,
    `scaled from the local measurement by the CPU quota of ${d.name}, cpuShare ${share} for ${threads} thread(s)`,
  );
}

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
      ...MODEL_INPUT_FLAGS,
      "no-corun": { type: "boolean" },
      workers: { type: "string", multiple: true },
      token: { type: "string" },
    });
    const path = onePositional("bench", positionals, "model file");
    const objective = (str(values, "objective") ?? "throughput") as Objective;
    if (!OBJECTIVES.includes(objective)) {
      throw new ArgumentError(`--objective: expected one of ${OBJECTIVES.join(", ")}, got '${objective}'`, {
        field: "objective",
      });
    }
    const declared = clusterFromFlags(str(values, "cluster"));
    const remote = remoteWorkers(values, tb.stateFile, declared);
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
    const emulated = declared.devices.filter(
      (d) => d.cpus !== undefined && d.profile === undefined && !profiles[d.name],
    );
    if (emulated.length > 0) {
      const threads = emulated[0].threads ?? emulated[0].cpus?.length ?? 1;
      const here = await profileModel(model.graph.model, {
        analyzed: model,
        source: path,
        threads,
        onProgress: (p) => bar.fraction(p.done / Math.max(1, p.total), `profiling ${p.phase}`),
      });
      for (const d of emulated) {
        const p = emulatedProfile(d, here, threads);
        if (p) profiles[d.name] = p;
      }
    }
    const measured = bool(values, "no-corun")
      ? { cluster: declared, profiles, coRun: undefined }
      : await withMeasuredCoRun(model, declared, profiles, { onStep: (s) => bar.step(s) });
    const { cluster, coRun } = measured;
    const cost = costModelFor(model, cluster, { profiles: measured.profiles });
    const bench = await benchCluster(model, cluster, cost, {
      objective,
      requests: intFlag("requests", str(values, "requests"), 200),
      rounds: intFlag("rounds", str(values, "rounds"), 3),
      modelPath: path,
      baselines: bool(values, "baselines"),
      workers: remote.workers,
      token: remote.token,
      linkDelayMs: remote.linkDelayMs,
      onStep: (s) => bar.step(s),
    });
    bar.done();
    const result = coRun ? { ...bench, coRun } : bench;
    const out = str(values, "output");
    if (out) writeFileSync(out, `${JSON.stringify(result, benchReplacer, 2)}\n`);
    if (json) io.out(JSON.stringify(result, benchReplacer));
    else printBench(io, result);
    return result.rows.some((r) => r.measured.failed > 0) ? 1 : 0;
  },
};
