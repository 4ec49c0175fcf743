import { mkdirSync } from "node:fs";
import { checkOutputFolder, outputError, writeOutputFile } from "../output-file.js";
import { join, resolve } from "node:path";
import { loadCluster } from "../cluster/load.js";
import { costModelFor } from "../cost/cost-factory.js";
import { saveProfile } from "../cost/profile.js";
import { analyzeModel } from "../ir/analyze.js";
import { saveModel } from "../onnx/model-io.js";
import { writePlan } from "../partition/plan.js";
import { readBenchFile } from "../report/report-bench.js";
import { renderReportHtml } from "../report/report-html.js";
import { reportInputFrom } from "../report/report-input.js";
import { benchCluster, benchReplacer } from "../harness/bench.js";
import { emulatedCosts } from "../harness/emulated-profiles.js";
import { buildZooModel } from "../zoo/index.js";
import { bool, type Command, intFlag, parseFlags, str } from "./command.js";
import { localClusterPath } from "./load.js";
import { profileCallbacks } from "./local-profiles.js";
import { printBench } from "./bench-table.js";
import { fmtBytes, fmtCount, fmtTime, style } from "./format.js";
import { progress } from "./progress.js";

const USAGE = `usage: cleave demo [--model NAME] [--requests N] [-o folder] [--json]

The whole story on this machine: builds a zoo model (default efficientnet_b0), profiles it with
onnxruntime, plans it for throughput on the two local devices (one pinned CPU core each), splits it, starts
the workers, runs it as a pipeline and, side by side, the whole model on one device and the planner's
baselines, prints measured against predicted, and writes an HTML report. Everything it writes goes to the folder given with -o (default ./cleave-demo).`;

/** `cleave demo`. */
export const demoCommand: Command = {
  name: "demo",
  summary: "profile, plan, split and run a zoo model on the local workers, measured against predicted",
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags("demo", argv, {
      model: { type: "string" },
      requests: { type: "string" },
      output: { type: "string", short: "o" },
      json: { type: "boolean" },
    });
    const json = bool(values, "json");
    const st = style(io.isTTY);
    const say = (s: string) => {
      if (!json) io.out(s);
    };
    const bar = progress(io, !json);
    const name = str(values, "model") ?? "efficientnet_b0";
    const requests = intFlag("requests", str(values, "requests"), 300);
    const out = resolve(str(values, "output") ?? "cleave-demo");
    checkOutputFolder(out);
    try {
      mkdirSync(out, { recursive: true });
    } catch (err) {
      throw outputError(out, err);
    }

    const modelPath = join(out, `${name}.onnx`);
    saveModel(buildZooModel(name), modelPath);
    const model = await analyzeModel(modelPath);
    say(
      `${st.bold("1. model")}   ${name}: ${model.graph.nodes.length} nodes, ${fmtCount(model.totals.params)} parameters, ` +
        `${fmtCount(model.totals.macs)} MACs  -> ${modelPath}`,
    );

    const declared = loadCluster(localClusterPath());
    const { cluster, coRun, profiles, local } = await emulatedCosts(
      model,
      declared,
      {},
      profileCallbacks(io, bar),
    );
    // The profile as measured here, before the co-run calibration, is the one saved and reported.
    const profile = local[declared.devices[0].name];
    const profilePath = join(out, "profile.json");
    saveProfile(profile, profilePath);
    say(
      `${st.bold("2. profile")} one onnxruntime thread on this machine: ${fmtTime(profile.wholeRun)} per inference -> ${profilePath}`,
    );
    bar.done();
    const cost = costModelFor(model, cluster, { profiles });
    const result = {
      ...(await benchCluster(model, cluster, cost, {
        objective: "throughput",
        requests,
        rounds: 5,
        modelPath,
        baselines: true,
        onStep: (s) => bar.step(s),
      })),
      ...(coRun ? { coRun } : {}),
    };
    bar.done();
    const plan = result.plan;
    say(
      `${st.bold("3. plan")}    throughput on ${cluster.devices.length} local devices: ` +
        plan.stages.map((s) => `${s.device} (${s.nodes} nodes, ${fmtTime(s.time)})`).join(" > ") +
        `, the cut carries ${fmtBytes(plan.cutBytes)}`,
    );
    say(
      `${st.bold("4. run")}     ${requests} requests on each in 5 rounds taking turns, same inputs, outputs checked against the whole model`,
    );
    const benchPath = join(out, "bench.json");
    writeOutputFile(benchPath, `${JSON.stringify(result, benchReplacer, 2)}\n`);
    writePlan(join(out, "plan.json"), plan.plan);
    bar.step("writing the report");
    const reportPath = join(out, "report.html");
    const input = reportInputFrom({
      model,
      plan: plan.plan,
      cluster,
      bench: readBenchFile(benchPath).bench,
      profile,
      profiles,
      profileFile: profilePath,
      name,
    });
    writeOutputFile(reportPath, renderReportHtml(input));
    bar.done();
    if (json) {
      io.out(JSON.stringify({ ...result, report: reportPath }, benchReplacer));
      return 0;
    }
    say("");
    printBench(io, result);
    say("");
    say(
      `${st.bold("5. report")}  ${st.cyan(reportPath)}  (plan: ${join(out, "plan.json")}, results: ${benchPath})`,
    );
    return 0;
  },
};
