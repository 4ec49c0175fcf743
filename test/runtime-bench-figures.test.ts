import assert from "node:assert/strict";
import { test } from "node:test";
import {
  benchFindings,
  type FindingInput,
  fmtPercent,
  fmtRatio,
  pipelineEfficiency,
  predictionError,
  speedupOf,
  transferCpuPerByte,
  transferTimeMs,
} from "../src/harness/bench-figures.js";

test("bench figures: one definition each", () => {
  assert.equal(speedupOf(120.2, 82.9), 120.2 / 82.9);
  assert.ok(Number.isNaN(speedupOf(1, 0)));
  assert.equal(predictionError(110, 100), 0.1);
  assert.equal(predictionError(90, 100), -0.1);
  // 50/s with the busiest device 16 ms per request in onnxruntime: 80% of the time computing.
  assert.equal(pipelineEfficiency(50, { a: 16, b: 12 }), 0.8);
  assert.equal(pipelineEfficiency(0, { a: 16 }), 0);
  // 1 ms of worker CPU outside onnxruntime for 1 MB moved: 1 ns per byte; a negative difference reads as 0.
  assert.ok(Math.abs(transferCpuPerByte(9, 8, 1e6) - 1e-9) < 1e-18);
  assert.equal(transferCpuPerByte(7.9, 8, 1e6), 0);
  assert.equal(transferTimeMs(20, { a: 8, b: 9 }), 3);
  assert.equal(transferTimeMs(10, { a: 8, b: 9 }), 0);
});

test("bench figures: formatted the same way everywhere", () => {
  for (const [x, want] of [
    [1.449855, "1.45x"],
    [0.7, "0.70x"],
    [12.34, "12.3x"],
    [Number.NaN, "-"],
  ] as const)
    assert.equal(fmtRatio(x), want);
  for (const [x, want] of [
    [0.1234, "+12.3%"],
    [-0.05, "-5.0%"],
    [0, "+0.0%"],
  ] as const)
    assert.equal(fmtPercent(x), want);
});

/** A bench of a two-stage plan and the whole model on one device, with the figures given. */
function bench(o: {
  objective?: string;
  plan: number;
  single: number;
  planPredicted?: number;
  singlePredicted?: number;
  busyMs?: number;
  stageTime?: number;
}): FindingInput {
  const busy = o.busyMs ?? 9;
  return {
    objective: o.objective ?? "throughput",
    rows: [
      {
        name: "plan",
        devices: ["a", "b"],
        predicted: { throughput: o.planPredicted ?? 110 },
        measured: { throughput: o.plan },
        stageBusyMs: { a: busy, b: 8 },
        stageCpuMs: { a: busy + 1, b: 9 },
        stageOrtCpuMs: { a: busy, b: 8 },
        pipelineEfficiency: pipelineEfficiency(o.plan, { a: busy, b: 8 }),
      },
      {
        name: "single",
        devices: ["a"],
        predicted: { throughput: o.singlePredicted ?? 60 },
        measured: { throughput: o.single },
        stageBusyMs: { a: 16 },
        stageCpuMs: { a: 17 },
        stageOrtCpuMs: { a: 16 },
        pipelineEfficiency: pipelineEfficiency(o.single, { a: 16 }),
      },
    ],
    stages: [
      { device: "a", time: (o.stageTime ?? 9) / 1e3 },
      { device: "b", time: 0.008 },
    ],
    cutBytes: 200 * 1024,
  };
}

test("bench findings: a configuration faster than the plan is named with the likely reason", () => {
  assert.deepEqual(benchFindings(bench({ plan: 100, single: 60 })), [], "the plan won: nothing to say");
  const cases: Array<[string, Parameters<typeof bench>[0], RegExp]> = [
    [
      "another objective",
      { objective: "latency", plan: 50, single: 60 },
      /optimises latency, not throughput/,
    ],
    [
      "slow stage",
      { plan: 50, single: 60, busyMs: 15, stageTime: 9 },
      /stage on a took 15\.00 ms .* 9\.00 ms priced/,
    ],
    [
      "low efficiency",
      { plan: 50, single: 60 },
      /busiest device computing only 45% of the time; moving the cut \(200 KiB/,
    ],
    ["same prediction", { plan: 100, single: 110, planPredicted: 60 }, /both were predicted at 60\.0\/s/],
    ["drift", { plan: 100, single: 102, busyMs: 9.5 }, /within what this machine's speed drifts/],
  ];
  for (const [name, o, want] of cases) {
    const f = benchFindings(bench(o));
    assert.equal(f.length, 1, name);
    assert.match(f[0], /^the whole model on a measured \d\.\d\dx the plan's throughput: /, name);
    assert.match(f[0], want, name);
  }
});
