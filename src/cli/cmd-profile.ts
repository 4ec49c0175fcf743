import { type ProfileProgress, profileModel, saveProfile } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import { checkOutputFile } from "../output-file.js";
import {
  bool,
  type Command,
  intFlag,
  onePositional,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  str,
  threadsFlag,
} from "./command.js";
import { style, table, fmtTime } from "./format.js";
import { loadForCli } from "./load.js";
import { progress } from "./progress.js";

const USAGE = `usage: cleave profile <model.onnx | zoo:NAME> -o profile.json [--threads n] [--runs r] [--warmup w]
                      [model input flags] [--json]

Measures every node's latency on this machine with onnxruntime's profiler (warm-up runs, then the median
of --runs runs), maps fused kernels (Conv+BatchNormalization+Relu run as one) back to the original nodes, and
writes the profile that 'cleave estimate' and the planners use.
  -o, --output   profile file to write (with --json and no -o, the profile goes to stdout)
  --threads      onnxruntime intra-op threads (default 1, at most this machine's CPUs)
  --runs         measured runs (default 10); --warmup: runs before measuring (default 5)
  --json         no table and no progress bar: a JSON summary (or the profile itself without -o)

Model input flags:
${MODEL_INPUT_USAGE}`;

/** `cleave profile`. */
export const profileCommand: Command = {
  name: "profile",
  summary: "measure per-node latency of a model on this machine (onnxruntime profiler)",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("profile", argv, {
      output: { type: "string", short: "o" },
      threads: { type: "string" },
      runs: { type: "string" },
      warmup: { type: "string" },
      json: { type: "boolean" },
      ...MODEL_INPUT_FLAGS,
    });
    const path = onePositional("profile", positionals, "model file");
    const json = bool(values, "json");
    const output = str(values, "output");
    if (output === undefined && !json)
      throw new ArgumentError("cleave profile: missing -o profile.json (or --json to print the profile)", {
        field: "output",
      });
    if (output !== undefined) checkOutputFile(output);
    const threads = threadsFlag(str(values, "threads"));
    const runs = intFlag("runs", str(values, "runs"), 10);
    const warmup = intFlag("warmup", str(values, "warmup"), 5, 0);
    const model = await loadForCli(path, modelInputs(values), io);
    const bar = progress(io, !json);
    const label: Record<ProfileProgress["phase"], string> = {
      fused: "profiling",
      unfused: "fused nodes alone",
      overhead: "stage overhead",
    };
    let profile: Awaited<ReturnType<typeof profileModel>>;
    try {
      profile = await profileModel(model.graph.model, {
        analyzed: model,
        source: path,
        threads,
        runs,
        warmup,
        onProgress: (p) => bar.fraction(p.done / Math.max(1, p.total), label[p.phase]),
      });
    } finally {
      bar.done();
    }
    if (output !== undefined) saveProfile(profile, output);
    const sum = Object.values(profile.latency).reduce((s, v) => s + v, 0);
    const kernels = Object.values(profile.latency).filter((v) => v > 0).length;
    if (json) {
      io.out(
        JSON.stringify(
          output === undefined
            ? profile
            : {
                output,
                model: profile.model,
                device: profile.device,
                wholeRun: profile.wholeRun,
                sumOfNodes: sum,
                kernels,
                fused: Object.keys(profile.fusedInto).length,
                removed: profile.removed.length,
                unattributed: profile.unattributed,
              },
        ),
      );
      return 0;
    }
    const st = style(io.isTTY);
    const top = Object.entries(profile.latency)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10);
    const fusedCount = new Map<string, number>();
    for (const anchor of Object.values(profile.fusedInto))
      fusedCount.set(anchor, (fusedCount.get(anchor) ?? 0) + 1);
    io.out(
      table(
        [
          ["node", "latency", "share", "fused in"],
          ...top.map(([name, v]) => [
            name,
            fmtTime(v),
            `${((100 * v) / sum).toFixed(1)}%`,
            String(fusedCount.get(name) ?? 0),
          ]),
        ],
        st,
      ),
    );
    io.out(
      `${profile.model.nodes} nodes: ${kernels} kernels, ${Object.keys(profile.fusedInto).length} fused, ${profile.removed.length} removed`,
    );
    io.out(
      `whole run ${fmtTime(profile.wholeRun)} (median of ${runs}); sum of node medians ${fmtTime(sum)}; ` +
        `${profile.device.threads} thread(s) on ${profile.device.cpu}`,
    );
    io.out(st.dim(`wrote ${output}`));
    return 0;
  },
};
