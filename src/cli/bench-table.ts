import type { BenchResult } from "../runtime/bench.js";
import { replicaReference } from "../runtime/corun.js";
import type { CliIO } from "./command.js";
import { style, table } from "./format.js";

/** Prints a bench result: predicted against measured for the plan and the best single device, and the speed-up. */
export function printBench(io: CliIO, r: BenchResult): void {
  const st = style(io.isTTY);
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
  io.out(
    table(
      [
        ["", "devices", "predicted/s", "measured/s", "error", "p50", "p95", "p99", "efficiency"],
        ...r.rows.map((row) => [
          row.name === "plan"
            ? "pipeline (plan)"
            : row.name === "single"
              ? "whole model"
              : `baseline ${row.name}`,
          row.devices.join(" > "),
          row.predicted.throughput.toFixed(1),
          row.measured.throughput.toFixed(1),
          pct(row.throughputError),
          `${row.measured.latencyMs.p50.toFixed(1)} ms`,
          `${row.measured.latencyMs.p95.toFixed(1)} ms`,
          `${row.measured.latencyMs.p99.toFixed(1)} ms`,
          row.pipelineEfficiency.toFixed(2),
        ]),
      ],
      st,
    ),
  );
  const busy = r.rows[0].stageBusyMs;
  io.out("");
  const spread =
    r.roundSpeedups.length > 1
      ? ` (median of ${r.roundSpeedups.length} rounds: ${r.roundSpeedups.map((x) => x.toFixed(2)).join(", ")})`
      : "";
  io.out(
    `speed-up over the best single device: ${st.green(`${r.speedup.toFixed(2)}x`)} measured${spread}, ` +
      `${r.predictedSpeedup.toFixed(2)}x predicted (${pct((r.predictedSpeedup - r.speedup) / r.speedup)}; a ratio, so a drift ` +
      "of the machine's speed cancels out)",
  );
  const alone = r.rows[0].standalone;
  if (alone)
    io.out(
      st.dim(
        `each stage alone on its device: ${alone.map((s) => `${s.device} ${s.throughput.toFixed(1)}/s`).join(", ")}; ` +
          `efficiency is the pipeline's throughput over the slowest of these`,
      ),
    );
  io.out(
    st.dim(
      `onnxruntime time per request: ${Object.entries(busy)
        .map(([d, ms]) => `${d} ${ms.toFixed(2)} ms`)
        .join(
          ", ",
        )} (predicted ${r.plan.stages.map((s) => `${s.device} ${(s.time * 1e3).toFixed(2)} ms`).join(", ")}); ` +
        `outputs match the whole model within ${r.rows[0].maxRelativeDiff.toExponential(1)} relative`,
    ),
  );
  const cpu = r.rows[0].stageCpuMs;
  io.out(
    st.dim(
      `CPU per request: ${Object.entries(cpu)
        .map(([d, ms]) => `${d} ${ms.toFixed(2)} ms`)
        .join(", ")}, coordinator ${r.rows[0].coordinatorCpuMs.toFixed(2)} ms`,
    ),
  );
  if (r.coRun) io.out(st.dim(coRunLine(r.coRun)));
}

/** One line on the measured co-run slowdown of devices sharing this machine. */
export function coRunLine(c: NonNullable<BenchResult["coRun"]>): string {
  return (
    "co-run: beside each other the devices took " +
    c.devices
      .map(
        (d) => `${d.name} ${d.aloneMs.toFixed(1)} -> ${d.togetherMs.toFixed(1)} ms (${d.factor.toFixed(2)}x)`,
      )
      .join(", ") +
    `; workers spend ${c.devices.map((d) => `${(d.transferCpu * 1e9).toFixed(2)}`).join("/")} ns per byte moved` +
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
    `${r.overBestAlone.toFixed(2)}x the best one alone`
  );
}
