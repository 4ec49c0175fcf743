import { baseEncoding, type EncodingName } from "../onnx/encoding.js";
import { BUDGET_ROW, type BenchResult } from "../harness/bench.js";
import { fmtPercent, fmtRatio } from "../harness/bench-figures.js";
import { replicaReference } from "../harness/corun.js";
import type { CliIO } from "./command.js";
import { encodingLines } from "./fidelity-flags.js";
import { style, table } from "./format.js";

/** Name of a bench row as every output shows it. */
export function rowLabel(name: string): string {
  if (name === "plan") return "plan";
  if (name === "pipeline") return "best pipeline";
  if (name === BUDGET_ROW) return "under budget";
  return name === "single" ? "whole model" : `baseline ${name}`;
}

/**
 * Prints a bench result: predicted against measured for the plan, the best single device and the baselines
 * (throughput with the pipeline full; latency of a request sent alone, which is what the prediction
 * describes, and under load), the speed-up, and a line for each configuration that beat the plan; with a
 * fidelity budget, the encoded plan's encodings, fidelity, speed-up over the float32 plan and measured error.
 */
export function printBench(io: CliIO, r: BenchResult): void {
  const st = style(io.isTTY);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  io.out(
    table(
      [
        [
          "",
          "devices",
          "predicted/s",
          "measured/s",
          "error",
          "latency pred.",
          "alone p50",
          "error",
          "loaded p50",
          "p99",
          "efficiency",
        ],
        ...r.rows.map((row) => [
          rowLabel(row.name),
          row.devices.join(" > "),
          row.predicted.throughput.toFixed(1),
          row.measured.throughput.toFixed(1),
          fmtPercent(row.throughputError),
          ms(row.predicted.latencyMs),
          ms(row.alone.latencyMs.p50),
          fmtPercent(row.latencyError),
          ms(row.measured.latencyMs.p50),
          ms(row.measured.latencyMs.p99),
          row.pipelineEfficiency.toFixed(2),
        ]),
      ],
      st,
    ),
  );
  const plan = r.rows[0];
  io.out("");
  const spread =
    r.roundSpeedups.length > 1 ? `; rounds ${r.roundSpeedups.map((x) => fmtRatio(x)).join(", ")}` : "";
  io.out(
    `speed-up over the best single device: ${st.green(fmtRatio(r.speedup))} measured ` +
      `(${plan.measured.throughput.toFixed(1)}/s over ${r.rows[1].measured.throughput.toFixed(1)}/s${spread}), ` +
      `${fmtRatio(r.predictedSpeedup)} predicted (${fmtPercent(r.speedupError)})`,
  );
  for (const f of r.findings) io.out(st.yellow(`note: ${f}`));
  io.out(
    st.dim(
      "efficiency: share of the time the busiest device spent in onnxruntime; latency alone: requests sent one " +
        "at a time, as predicted; loaded: with the pipeline full",
    ),
  );
  const alone = plan.standalone;
  if (alone)
    io.out(
      st.dim(
        `each stage alone on its device: ${alone.map((s) => `${s.device} ${s.throughput.toFixed(1)}/s`).join(", ")}`,
      ),
    );
  io.out(
    st.dim(
      `onnxruntime time per request: ${Object.entries(plan.stageBusyMs)
        .map(([d, x]) => `${d} ${x.toFixed(2)} ms`)
        .join(
          ", ",
        )} (predicted ${r.plan.stages.map((s) => `${s.device} ${(s.time * 1e3).toFixed(2)} ms`).join(", ")}); ` +
        `outputs match the whole model within ${plan.maxRelativeDiff.toExponential(1)} relative`,
    ),
  );
  io.out(
    st.dim(
      `CPU per request: ${Object.entries(plan.stageCpuMs)
        .map(
          ([d, x]) => `${d} ${x.toFixed(2)} ms (${(plan.stageOrtCpuMs[d] ?? 0).toFixed(2)} in onnxruntime)`,
        )
        .join(", ")}, coordinator ${plan.coordinatorCpuMs.toFixed(2)} ms`,
    ),
  );
  const replicated = plan.replicas?.filter((x) => plan.devices[x.stage]?.includes("+"));
  if (replicated && replicated.length > 0)
    io.out(
      st.dim(
        `replicas of the plan: ${replicated
          .map(
            (x) => `stage ${x.stage} on ${x.device} ${x.throughput.toFixed(1)}/s (${x.completed} requests)`,
          )
          .join(", ")}`,
      ),
    );
  if (r.coRun) io.out(st.dim(coRunLine(r.coRun)));
  if (r.budget) printBudget(io, r, r.budget);
}

/** The lines of the plan under a fidelity budget: what it encodes, its fidelity, speed-up and measured error. */
function printBudget(io: CliIO, r: BenchResult, b: NonNullable<BenchResult["budget"]>): void {
  const st = style(io.isTTY);
  const row = r.rows.find((x) => x.name === BUDGET_ROW);
  const plan = r.rows[0];
  if (!row) return;
  io.out("");
  io.out(`${rowLabel(BUDGET_ROW)} (${row.devices.join(" > ")}), planned with the encodings:`);
  for (const line of encodingLines(b.encodings)) io.out(`  ${line}`);
  io.out(
    `speed-up over the float32 plan: ${st.green(fmtRatio(b.speedup.throughput))} throughput ` +
      `(${row.measured.throughput.toFixed(1)}/s over ${plan.measured.throughput.toFixed(1)}/s), ` +
      `${st.green(fmtRatio(b.speedup.latency))} latency alone (${row.alone.latencyMs.p50.toFixed(1)} ms against ` +
      `${plan.alone.latencyMs.p50.toFixed(1)} ms); predicted ${fmtRatio(b.predictedSpeedup.throughput)} and ` +
      `${fmtRatio(b.predictedSpeedup.latency)}; prediction error ${fmtPercent(row.throughputError)} throughput, ` +
      `${fmtPercent(row.latencyError)} latency`,
  );
  io.out(
    `measured against the whole model over ${b.referenceChecked} requests: max rel diff ` +
      `${row.maxRelativeDiff.toExponential(1)} (${
        b.encodings.tensors.every((t) => baseEncoding(t.encoding as EncodingName) === "float32")
          ? "lossless encodings only"
          : "a lossy plan: reported, not checked"
      })`,
  );
  if (b.relayInputs)
    io.out(st.dim("every configuration sent the input through the cluster's input device, as planned"));
}

/** One line on the measured co-run slowdown of devices sharing this machine. */
export function coRunLine(c: NonNullable<BenchResult["coRun"]>): string {
  return (
    "co-run: beside each other the devices took " +
    c.devices
      .map(
        (d) => `${d.name} ${d.aloneMs.toFixed(1)} -> ${d.togetherMs.toFixed(1)} ms (${fmtRatio(d.factor)})`,
      )
      .join(", ") +
    `; outside onnxruntime their workers spent ${c.devices.map((d) => `${d.name} ${(d.transferCpu * 1e9).toFixed(2)}`).join(", ")} ns of CPU per byte moved` +
    (c.coordinatorCpuMs !== undefined
      ? `; the coordinator ${c.coordinatorCpuMs.toFixed(2)} ms per request`
      : "") +
    ". All are priced into pipelined throughput" +
    replicaLine(c)
  );
}

/** The data-parallel reference, when the measurement has the throughputs (older bench files do not). */
function replicaLine(c: NonNullable<BenchResult["coRun"]>): string {
  if (!c.devices.every((d) => d.togetherThroughput > 0) || (c.withoutQuota?.length ?? 0) > 0) return "";
  const r = replicaReference(c);
  return (
    `. Whole-model replicas on all of them at once reached ${r.throughput.toFixed(1)}/s, ` +
    `${fmtRatio(r.overBestAlone)} the best one alone`
  );
}
