/** One step every request goes through in a pipeline: a stage's compute or a transfer over a link. */
export interface PipelineStep {
  kind: "compute" | "transfer";
  /** Row label, e.g. "S1 · jetson" or "jetson → pi". */
  lane: string;
  /** Stage the step belongs to (for colour): the computing stage, or the sending stage of a transfer (-1: input). */
  stage: number;
  /** Time per request, s. */
  time: number;
}

/** A bar of a Gantt chart: request `request` occupying step `step` from `start` to `end` (s). */
export interface ScheduledBar {
  step: number;
  request: number;
  start: number;
  end: number;
}

/** Steps in the order a request meets them: transfers from the input device, then each stage followed by its sends. */
export function pipelineSteps(
  stages: ReadonlyArray<{ device: string; time: number }>,
  links: ReadonlyArray<{ fromStage: number; toStage: number; from: string; to: string; time: number }>,
): PipelineStep[] {
  const steps: PipelineStep[] = [];
  const sendsOf = (s: number) =>
    links
      .filter((l) => l.fromStage === s)
      .sort((a, b) => a.toStage - b.toStage)
      .map(
        (l): PipelineStep => ({
          kind: "transfer",
          lane: `${l.from} → ${l.to}`,
          stage: l.fromStage,
          time: l.time,
        }),
      );
  steps.push(...sendsOf(-1));
  stages.forEach((s, i) => {
    steps.push({ kind: "compute", lane: `S${i + 1} · ${s.device}`, stage: i, time: s.time });
    steps.push(...sendsOf(i));
  });
  return steps;
}

/**
 * Schedules `requests` back-to-back requests through the steps as a flow shop: a step serves one request at a
 * time, in arrival order, and a request starts a step when it has left the previous one and the step is free.
 * All requests are ready at time 0, so the steady-state period is the slowest step's time.
 */
export function schedulePipeline(steps: readonly PipelineStep[], requests: number): ScheduledBar[] {
  const bars: ScheduledBar[] = [];
  const free = new Float64Array(steps.length);
  for (let r = 0; r < requests; r++) {
    let t = 0;
    steps.forEach((s, k) => {
      const start = Math.max(t, free[k]);
      const end = start + s.time;
      bars.push({ step: k, request: r, start, end });
      free[k] = end;
      t = end;
    });
  }
  return bars;
}
