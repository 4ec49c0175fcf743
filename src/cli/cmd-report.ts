import { statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadCluster } from "../cluster/load.js";
import { loadProfile } from "../cost/profile.js";
import { ArgumentError, errorMessage } from "../errors.js";
import { readBenchFile } from "../report/report-bench.js";
import { renderReportHtml } from "../report/report-html.js";
import { reportInputFrom } from "../report/report-input.js";
import { readReportPlanFile } from "../report/report-plan.js";
import { bool, type Command, list, parseFlags, parseInputShapes, str } from "./command.js";
import { fmtBytes, fmtTime, style } from "./format.js";
import { loadForCli } from "./load.js";

const USAGE = `usage: cleave report --plan plan.json [-o report.html] [--bench bench.json] [--profile profile.json]
                     [--model m.onnx] [--cluster cluster.yaml] [--input-shape name=1x3x224x224] [--json]

Writes one self-contained HTML page (opens offline) showing a plan: the network laid out top to bottom and
coloured by stage with the cut tensors and their sizes, per-layer cost with the bytes crossing each boundary,
the pipeline as a timeline, the latency/throughput/energy trade-offs against the baselines, the stages, and
memory per device.
  --plan      plan file (from 'cleave plan'); it names the model and cluster
  -o          HTML file to write (default report.html)
  --bench     measurements from 'cleave bench' (measured figures and timeline beside the predicted ones)
  --profile   a profile of the model ('cleave profile'): measured per-node latency in the layer chart
  --model, --cluster   use these instead of the ones the plan names
  --json      print {output, bytes, nodes, stages} instead of a sentence`;

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
      "input-shape": { type: "string", multiple: true },
      json: { type: "boolean" },
    });
    if (positionals.length > 0)
      throw new ArgumentError(`cleave report: unexpected argument '${positionals[0]}'`);
    const planPath = str(values, "plan");
    if (planPath === undefined)
      throw new ArgumentError("cleave report: missing --plan plan.json (see cleave report --help)", {
        field: "plan",
      });
    const output = str(values, "output") ?? "report.html";
    const file = readReportPlanFile(planPath);
    const inputShapes = parseInputShapes(list(values, "input-shape")) ?? file.inputShapes;
    const modelSpec = str(values, "model") ?? file.model;
    const clusterArg = str(values, "cluster");
    const cluster =
      clusterArg !== undefined
        ? loadCluster(clusterArg)
        : typeof file.cluster === "string"
          ? loadCluster(file.cluster)
          : file.cluster;
    const model = await loadForCli(modelSpec, inputShapes);
    const benchPath = str(values, "bench");
    const profilePath = str(values, "profile");
    const input = reportInputFrom({
      model,
      plan: { ...file.plan, order: file.order },
      cluster,
      bench: benchPath !== undefined ? readBenchFile(benchPath) : undefined,
      profile: profilePath !== undefined ? loadProfile(profilePath) : undefined,
      profileFile: profilePath,
      inputShapes,
      name: modelSpec.startsWith("zoo:") ? modelSpec.slice(4) : undefined,
    });
    const html = renderReportHtml(input);
    try {
      writeFileSync(output, html);
    } catch (err) {
      throw new ArgumentError(`${output}: cannot write the report (${errorMessage(err)})`, { file: output });
    }
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
