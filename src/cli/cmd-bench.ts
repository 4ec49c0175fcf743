import { writeFileSync } from "node:fs";
import { costModelFor } from "../cost/cost-factory.js";
import { loadProfile, type Profile, profileModel } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import { OBJECTIVES, type Objective } from "../partition/constraints.js";
import { benchCluster, benchReplacer } from "../runtime/bench.js";
import { printBench } from "./bench-table.js";
import {
  bool,
  type Command,
  intFlag,
  list,
  onePositional,
  parseFlags,
  parseInputShapes,
  str,
} from "./command.js";
import { clusterFromFlags } from "./cluster-flag.js";
import { loadForCli } from "./load.js";
import { progress } from "./progress.js";

const USAGE = `usage: cleave bench <model.onnx | zoo:NAME> [--cluster c.yaml] [--objective throughput|latency|energy]
                    [--profile device=profile.json ...] [--requests N] [--baselines] [-o bench.json] [--json]

Plans the model on the cluster, then runs, side by side with the same inputs, the planned pipeline and the
whole model on the best single device, on real workers, and prints throughput, latency percentiles, the
speed-up and the planner's prediction against the measurement. Without --cluster it uses the shipped local
cluster (two devices of one pinned CPU core each). Devices without a profile that are emulated here (cpus:)
are profiled on this machine first. --baselines also runs every baseline split of the planner for real.
-o writes the results (with the plan) as JSON, for 'cleave report --bench'.`;

/** `cleave bench`. */
export const benchCommand: Command = {
  name: "bench",
  summary: "plan, then measure the pipeline against the whole model on the best single device",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("bench", argv, {
      cluster: { type: "string" },
      objective: { type: "string" },
      profile: { type: "string", multiple: true },
      requests: { type: "string" },
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
      baselines: { type: "boolean" },
      "input-shape": { type: "string", multiple: true },
    });
    const path = onePositional("bench", positionals, "model file");
    const objective = (str(values, "objective") ?? "throughput") as Objective;
    if (!OBJECTIVES.includes(objective)) {
      throw new ArgumentError(`--objective: expected one of ${OBJECTIVES.join(", ")}, got '${objective}'`, {
        field: "objective",
      });
    }
    const cluster = clusterFromFlags(str(values, "cluster"));
    const model = await loadForCli(path, parseInputShapes(list(values, "input-shape")));
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
    const emulated = cluster.devices.filter(
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
      for (const d of emulated) if ((d.threads ?? d.cpus?.length ?? 1) === threads) profiles[d.name] = here;
    }
    const cost = costModelFor(model, cluster, { profiles });
    const result = await benchCluster(model, cluster, cost, {
      objective,
      requests: intFlag("requests", str(values, "requests"), 200),
      modelPath: path,
      baselines: bool(values, "baselines"),
      onStep: (s) => bar.step(s),
    });
    bar.done();
    const out = str(values, "output");
    if (out) writeFileSync(out, `${JSON.stringify(result, benchReplacer, 2)}\n`);
    if (json) io.out(JSON.stringify(result, benchReplacer));
    else printBench(io, result);
    return result.rows.some((r) => r.measured.failed > 0) ? 1 : 0;
  },
};
