/**
 * The figures a benchmark reports, each defined once here: the terminal (`cleave bench`, `cleave demo`), the
 * JSON they write and the HTML report all take them from these functions, and show them with the formatters
 * below, so the same measurement never reads as two numbers.
 */

/**
 * Speed-up of a configuration over another: its measured (or predicted) throughput over the other's, both in
 * requests/s. For measurements, the pooled throughputs (completed requests over the summed wall time of the
 * rounds), the figures the bench table shows, so the speed-up is the ratio of two numbers on screen.
 * NaN when `over` is not positive.
 */
export function speedupOf(throughput: number, over: number): number {
  return over > 0 ? throughput / over : Number.NaN;
}

/** Prediction error: (predicted - measured) / measured; positive when the prediction was too optimistic for a rate. */
export function predictionError(predicted: number, measured: number): number {
  return measured > 0 ? (predicted - measured) / measured : Number.NaN;
}

/**
 * Pipeline efficiency: the share of the wall time the busiest device spent in onnxruntime, throughput (1/s) x
 * its onnxruntime time per request (ms) / 1000. A worker runs one request at a time, so it is at most 1 (up to
 * timer resolution); 1 means the slowest stage never waited for its inputs or for sending its outputs, and
 * what is missing to 1 is what transfers, framing and stages waiting on each other cost the pipeline.
 */
export function pipelineEfficiency(
  throughput: number,
  stageBusyMs: Readonly<Record<string, number>>,
): number {
  const busiest = Math.max(0, ...Object.values(stageBusyMs));
  return throughput > 0 && busiest > 0 ? (throughput * busiest) / 1000 : 0;
}

/**
 * CPU a worker spends moving tensors: its process CPU time per request outside onnxruntime (ms, the process
 * total less the CPU time inside session.run) over the bytes it received and sent per request, in s/byte.
 * Never negative (a negative difference is timer noise and reads as 0).
 */
export function transferCpuPerByte(cpuMs: number, ortCpuMs: number, bytes: number): number {
  return Math.max(0, cpuMs - ortCpuMs) / 1000 / Math.max(1, bytes);
}

/**
 * Communication time of one request sent alone (ms): its end-to-end latency less the onnxruntime time of
 * every device on its way (mean per request, measured in the same run). What the timeline shows as the
 * measured transfers, spread over the links.
 */
export function transferTimeMs(
  aloneLatencyMs: number,
  stageBusyMs: Readonly<Record<string, number>>,
): number {
  const compute = Object.values(stageBusyMs).reduce((s, v) => s + v, 0);
  return Math.max(0, aloneLatencyMs - compute);
}

/** A ratio as shown everywhere: two decimals (one from 10 on) and an x, e.g. "1.45x"; "-" when not finite. */
export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(r >= 10 ? 1 : 2)}x` : "-";
}

/** A relative error or difference as shown everywhere: a sign and one decimal, e.g. "+12.3%". */
export function fmtPercent(x: number): string {
  return Number.isFinite(x) ? `${x >= 0 ? "+" : "-"}${Math.abs(x * 100).toFixed(1)}%` : "-";
}

/** What a bench compares, as {@link benchFindings} needs it. */
export interface FindingInput {
  objective: string;
  /** The plan's row first; "single" is the best single device, any other name a baseline. */
  rows: ReadonlyArray<{
    name: string;
    devices: readonly string[];
    predicted: { throughput: number };
    measured: { throughput: number };
    stageBusyMs: Readonly<Record<string, number>>;
    stageCpuMs: Readonly<Record<string, number>>;
    stageOrtCpuMs: Readonly<Record<string, number>>;
    pipelineEfficiency: number;
  }>;
  /** The plan's predicted onnxruntime time per stage, s. */
  stages: ReadonlyArray<{ device: string; time: number }>;
  /** Bytes the plan's cut carries per request. */
  cutBytes: number;
}

/**
 * One sentence for every configuration that measured faster than the plan, with the likely reason read off
 * the measurement: the plan optimised another objective; or a stage of the plan ran well slower in onnxruntime
 * than priced (co-run slowdown, a slower core than profiled); or the pipeline lost much of its time to moving
 * tensors and waiting (low efficiency); else the prediction held within its usual error and the difference is
 * the machine's drift between rounds.
 */
export function benchFindings(r: FindingInput): string[] {
  const plan = r.rows[0];
  const out: string[] = [];
  for (const row of r.rows.slice(1)) {
    if (!(row.measured.throughput > plan.measured.throughput)) continue;
    const who =
      row.name === "single"
        ? `the whole model on ${row.devices[0]}`
        : `baseline ${row.name} (${row.devices.join(" > ")})`;
    const ratio = fmtRatio(speedupOf(row.measured.throughput, plan.measured.throughput));
    out.push(`${who} measured ${ratio} the plan's throughput: ${likelyReason(r, row)}`);
  }
  return out;
}

function likelyReason(r: FindingInput, row: FindingInput["rows"][number]): string {
  const plan = r.rows[0];
  if (r.objective !== "throughput")
    return `the plan optimises ${r.objective}, not throughput (likely and expected)`;
  const predictedGain = plan.predicted.throughput / row.predicted.throughput - 1;
  if (Math.abs(predictedGain) < 0.005)
    return (
      `likely reason: both were predicted at ${plan.predicted.throughput.toFixed(1)}/s (the same work on the same ` +
      "device), so the difference is this machine's speed drifting between rounds"
    );
  if (predictedGain < 0)
    return "it was predicted faster too: the plan was chosen under a constraint it meets and this one does not";
  // Stage by stage: onnxruntime time measured in the pipeline against the priced stage time.
  const slowest = r.stages
    .map((s) => ({ ...s, measuredMs: plan.stageBusyMs[s.device] ?? 0 }))
    .map((s) => ({ ...s, over: s.time > 0 ? s.measuredMs / (s.time * 1e3) : 1 }))
    .sort((a, b) => b.over - a.over)[0];
  if (slowest !== undefined && slowest.over > 1.25)
    return (
      `likely reason: the plan's stage on ${slowest.device} took ${slowest.measuredMs.toFixed(2)} ms in onnxruntime ` +
      `against ${(slowest.time * 1e3).toFixed(2)} ms priced (${fmtRatio(slowest.over)}: its devices slowed each ` +
      "other down more than measured, or the core ran slower than when it was profiled)"
    );
  if (plan.pipelineEfficiency < 0.8) {
    const outside = Object.entries(plan.stageCpuMs)
      .map(([d, ms]) => `${d} ${Math.max(0, ms - (plan.stageOrtCpuMs[d] ?? 0)).toFixed(2)} ms`)
      .join(", ");
    return (
      `likely reason: the pipeline kept its busiest device computing only ${(plan.pipelineEfficiency * 100).toFixed(0)}% ` +
      `of the time; moving the cut (${(r.cutBytes / 1024).toFixed(0)} KiB per request) and waiting on each other ` +
      `cost the rest (worker CPU outside onnxruntime per request: ${outside})`
    );
  }
  return (
    `likely reason: the plan's predicted gain (${fmtPercent(predictedGain)}) ` +
    "is within what this machine's speed drifts between rounds; rerun with more --requests and --rounds"
  );
}
