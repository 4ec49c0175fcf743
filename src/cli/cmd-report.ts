import { existsSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { loadCluster } from "../cluster/load.js";
import { checkOutputFile, writeOutputFile } from "../output-file.js";
import { locatedBesidePlan, resolveClusterSpec } from "./cluster-flag.js";
import { loadProfile } from "../cost/profile.js";
import { ArgumentError } from "../errors.js";
import { readBenchFile } from "../report/report-bench.js";
import { renderReportHtml } from "../report/report-html.js";
import { reportInputFrom } from "../report/report-input.js";
import { modelForPlan } from "../partition/plan-parallel.js";
import { readPlan } from "../partition/plan.js";
import {
  bool,
  type Command,
  parseFlags,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  planInputs,
  str,
} from "./command.js";
import { fmtBytes, fmtTime, style } from "./format.js";
import { loadForCli } from "./load.js";

const USAGE = `usage: cleave report --plan plan.json [-o report.html] [--bench bench.json] [--profile profile.json]
                     [--model m.onnx] [--cluster cluster.yaml] [model input flags] [--json]

Writes one self-contained HTML page (opens offline) showing a plan: the network laid out top to bottom and
coloured by stage with the cut tensors and their sizes, per-layer cost with the bytes crossing each boundary,
the pipeline as a timeline, the latency/throughput/energy trade-offs against the baselines, the stages, and
memory per device; for a plan made under a fidelity budget, its encoded cut tensors (bytes before and after) and
the fidelity it measured.
  --plan      plan file (from 'cleave plan'); it names the model and cluster
  -o          HTML file to write (default report.html)
  --bench     measurements from 'cleave bench' (or 'cleave run --json'): measured figures and timeline beside
              the predicted ones; a 'cleave bench' file carries its plan, so --plan may then be left out
  --profile   a profile of the model ('cleave profile'): measured per-node latency in the layer chart
  --model, --cluster   use these instead of the ones the plan names
  --json      print {output, bytes, nodes, stages} instead of a sentence

Model input flags:
${MODEL_INPUT_USAGE}`;

/** `cleave report`. */
export const reportCommand: Command = {
  name: "report",
  summary: "write an HTML report of a plan (graph, per-layer costs, timeline, trade-offs)",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("report", argv, {
      plan: { type: "string" },
      output: { type: "string", short: "o" },
      bench: { type: "string" },
      profile: { type: "string" },
      model: { type: "string" },
      cluster: { type: "string" },
      ...MODEL_INPUT_FLAGS,
      json: { type: "boolean" },
    });
    if (positionals.length > 0)
      throw new ArgumentError(`cleave report: unexpected argument '${positionals[0]}'`);
    const planPath = str(values, "plan");
    const benchPath = str(values, "bench");
    const benchFile = benchPath !== undefined ? readBenchFile(benchPath) : undefined;
    if (planPath === undefined && benchFile?.plan === undefined) {
      throw new ArgumentError("cleave report: missing --plan plan.json (see cleave report --help)", {
        field: "plan",
      });
    }
    const plan = planPath !== undefined ? readPlan(planPath) : benchFile!.plan!;
    const planFile = planPath ?? benchPath!;
    const output = str(values, "output") ?? "report.html";
    checkOutputFile(output);
    const inputs = modelInputs(values, planInputs(plan));
    const { inputShapes } = inputs;
    const modelSpec = str(values, "model") ?? locatedBesidePlan(plan.model, planFile);
    const clusterArg = str(values, "cluster");
    const clusterFile =
      clusterArg !== undefined ? resolveClusterSpec(clusterArg) : locatedBesidePlan(plan.cluster, planFile);
    if (!existsSync(clusterFile)) {
      throw new ArgumentError(
        `the plan's cluster '${plan.cluster}' is not a file here: give it with --cluster cluster.yaml`,
        { field: "cluster" },
      );
    }
    // A tiled or branch plan's stages are of the model as the plan rewrites it.
    const model = await modelForPlan(await loadForCli(modelSpec, inputs, io), plan);
    const profilePath = str(values, "profile");
    const input = reportInputFrom({
      model,
      plan,
      cluster: loadCluster(clusterFile),
      bench: benchFile?.bench,
      profile: profilePath !== undefined ? loadProfile(profilePath) : undefined,
      profileFile: profilePath,
      inputShapes,
      name: basename(modelSpec)
        .replace(/^zoo:/, "")
        .replace(/\.onnx$/, ""),
    });
    const html = renderReportHtml(input);
    writeOutputFile(output, html);
    const bytes = statSync(output).size;
    if (bool(values, "json")) {
      io.out(
        JSON.stringify({
          output: resolve(output),
          bytes,
          nodes: input.nodes.length,
          stages: input.stages.length,
        }),
      );
      return 0;
    }
    const st = style(io.isTTY);
    io.out(
      `wrote ${st.bold(output)} (${fmtBytes(bytes)}): ${input.title}, ${input.stages.length} stages, ` +
        `predicted ${fmtTime(input.plan.latency)} per request, ${input.plan.throughput.toPrecision(3)}/s`,
    );
    return 0;
  },
};

/** A path recorded in a plan (relative to where `cleave plan` ran): as given when it exists, else beside the plan. */
