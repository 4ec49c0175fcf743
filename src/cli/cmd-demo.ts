import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadCluster } from "../cluster/load.js";
import { costModelFor } from "../cost/cost-factory.js";
import { profileModel, saveProfile } from "../cost/profile.js";
import { analyzeModel } from "../ir/analyze.js";
import { saveModel } from "../onnx/model-io.js";
import { planForCluster } from "../partition/plan-cluster.js";
import { runSplit } from "../runtime/run-split.js";
import { buildZooModel } from "../zoo/index.js";
import { bool, type Command, intFlag, parseFlags, str } from "./command.js";
import { localClusterPath } from "./load.js";
import { fmtBytes, fmtCount, fmtTime, style, table } from "./format.js";
import { progress } from "./progress.js";

const USAGE = `usage: cleave demo [--model NAME] [--requests N] [-o folder] [--json]

The whole story on this machine: builds a zoo model (default efficientnet_b0), profiles it with
onnxruntime, plans it for throughput on the two local devices (one pinned CPU core each), splits it, starts
the workers, runs it as a pipeline and, side by side, the whole model on one device, and prints measured
against predicted. Everything it writes goes to the folder given with -o (default ./cleave-demo).`;

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
    mkdirSync(out, { recursive: true });

    const modelPath = join(out, `${name}.onnx`);
    saveModel(buildZooModel(name), modelPath);
    const model = await analyzeModel(modelPath);
    say(
      `${st.bold("1. model")}   ${name}: ${model.graph.nodes.length} nodes, ${fmtCount(model.totals.params)} parameters, ` +
        `${fmtCount(model.totals.macs)} MACs  -> ${modelPath}`,
    );

    const profile = await profileModel(model.graph.model, {
      analyzed: model,
      source: modelPath,
      threads: 1,
      runs: 10,
      warmup: 3,
      onProgress: (p) => bar.fraction(p.done / Math.max(1, p.total), `profiling ${p.phase}`),
    });
    bar.done();
    const profilePath = join(out, "profile.json");
    saveProfile(profile, profilePath);
    say(
      `${st.bold("2. profile")} one onnxruntime thread on this machine: ${fmtTime(profile.wholeRun)} per inference -> ${profilePath}`,
    );

    const cluster = loadCluster(localClusterPath());
    const cost = costModelFor(model, cluster, {
      profiles: Object.fromEntries(cluster.devices.map((d) => [d.name, profile])),
    });
    const planned = planForCluster(model, cluster, cost, { objective: "throughput" });
    say(
      `${st.bold("3. plan")}    throughput on ${cluster.devices.length} local devices: ` +
        planned.stages.map((s) => `${s.device} (${s.nodes} nodes, ${fmtTime(s.time)})`).join(" > ") +
        `, cut carries ${fmtBytes(planned.cutBytes)}`,
    );

    const run = (label: string, assignment = planned.assignment, devices = planned.devices) =>
      runSplit(model, assignment, devices, cluster, {
        requests,
        modelPath,
        onStep: (s) => bar.step(`${label}: ${s}`),
      });
    const pipelined = await run("pipeline");
    const single = await run("single device", planned.single.assignment, [planned.single.device]);
    bar.done();
    const speedup = pipelined.report.throughput / single.report.throughput;
    const err = (pred: number, meas: number) => `${(((pred - meas) / meas) * 100).toFixed(1)}%`;
    const results = {
      model: name,
      requests,
      plan: {
        devices: planned.devices,
        predicted: { throughput: planned.throughput, latencyMs: planned.latency * 1e3 },
        measured: { throughput: pipelined.report.throughput, latencyMs: pipelined.report.latencyMs },
        stageBusyMs: pipelined.stageBusyMs,
        maxRelativeDiff: pipelined.maxRelativeDiff,
      },
      single: {
        device: planned.single.device,
        predicted: { throughput: planned.single.throughput, latencyMs: planned.single.latency * 1e3 },
        measured: { throughput: single.report.throughput, latencyMs: single.report.latencyMs },
      },
      speedup,
      predictedSpeedup: planned.throughput / planned.single.throughput,
    };
    writeFileSync(join(out, "bench.json"), `${JSON.stringify(results, null, 2)}\n`);
    if (json) {
      io.out(JSON.stringify(results));
      return 0;
    }
    say(
      `${st.bold("4. run")}     ${requests} requests each, same inputs, outputs checked against the whole model`,
    );
    say("");
    say(
      table(
        [
          ["", "devices", "predicted/s", "measured/s", "error", "p50", "p99"],
          [
            "pipeline",
            planned.devices.join(" > "),
            planned.throughput.toFixed(1),
            pipelined.report.throughput.toFixed(1),
            err(planned.throughput, pipelined.report.throughput),
            `${pipelined.report.latencyMs.p50.toFixed(1)} ms`,
            `${pipelined.report.latencyMs.p99.toFixed(1)} ms`,
          ],
          [
            "whole model",
            planned.single.device,
            planned.single.throughput.toFixed(1),
            single.report.throughput.toFixed(1),
            err(planned.single.throughput, single.report.throughput),
            `${single.report.latencyMs.p50.toFixed(1)} ms`,
            `${single.report.latencyMs.p99.toFixed(1)} ms`,
          ],
        ],
        st,
      ),
    );
    say("");
    say(
      `speed-up of the pipeline: ${st.green(`${speedup.toFixed(2)}x`)} measured, ${results.predictedSpeedup.toFixed(2)}x predicted` +
        `  (outputs match the whole model within ${pipelined.maxRelativeDiff.toExponential(1)} relative)`,
    );
    say(st.dim(`results -> ${join(out, "bench.json")}`));
    return 0;
  },
};
