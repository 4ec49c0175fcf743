import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type AdaptDecision,
  type AdaptState,
  checkAdaptPolicy,
  DEFAULT_ADAPT_POLICY,
  decideAdapt,
} from "../src/runtime/control/adapt-policy.js";
import { Ewma, OnlineEstimates } from "../src/runtime/control/estimates.js";
import type { StatsReplyMsg } from "../src/runtime/transport/protocol.js";
import { seededRandom } from "../src/onnx/prng.js";

/** Runs the decision over a sequence of (running, best) pairs sampled every `stepMs`, returning each action. */
function run(
  seq: Array<{ running: number; best: number; moveBytes?: number }>,
  stepMs = 500,
  bandwidth = 125e6,
): AdaptDecision[] {
  let state: AdaptState = {};
  return seq.map((s, i) => {
    const d = decideAdapt(
      state,
      { atMs: i * stepMs, running: s.running, best: s.best, moveBytes: s.moveBytes ?? 5e6, bandwidth },
      DEFAULT_ADAPT_POLICY,
    );
    state = d.state;
    return d;
  });
}

test("noise around the threshold does not flap: a gain that never holds 3 s never switches", () => {
  const r = seededRandom(7);
  // The best plan's estimate wanders between 5% and 25% over the running one, crossing 15% every few samples.
  const seq = Array.from({ length: 200 }, (_, i) => ({
    running: 100,
    best: 100 * (1 + (i % 5 === 4 ? 0.05 : 0.16 + 0.09 * r())),
  }));
  const acts = run(seq).map((d) => d.action);
  assert.equal(acts.filter((a) => a === "switch").length, 0);
  assert.ok(acts.includes("wait"), "it waited while the gain was above the threshold");
});

test("a real change switches once, after the hold, and not again", () => {
  const seq = [
    ...Array.from({ length: 10 }, () => ({ running: 100, best: 104 })),
    // A link slows: the running plan falls to 40/s, the best plan keeps 90/s.
    ...Array.from({ length: 10 }, () => ({ running: 40, best: 90 })),
  ];
  const d = run(seq);
  const switches = d.flatMap((x, i) => (x.action === "switch" ? [i] : []));
  assert.equal(switches.length, 1);
  // The change comes at sample 10; the hold is 3000 ms at 500 ms a sample.
  assert.equal(switches[0], 16);
  // After the switch the estimates describe the new plan: it runs at the best rate.
  const after = run([...seq.slice(0, 17), ...Array.from({ length: 20 }, () => ({ running: 90, best: 93 }))]);
  assert.equal(after.filter((x) => x.action === "switch").length, 1);
});

test("a gain that does not pay for moving the stages stays", () => {
  // 20% better, but shipping 600 MB at 1 MB/s (600 s) costs more than a minute of the gain.
  const d = run(
    Array.from({ length: 20 }, () => ({ running: 100, best: 120, moveBytes: 600e6 })),
    500,
    1e6,
  );
  assert.equal(d.filter((x) => x.action === "switch").length, 0);
  assert.match(d.at(-1)!.reason, /moving/);
  // The same gain with the stages cached on the workers (nothing to ship) switches (within one hold's samples).
  assert.equal(
    run(Array.from({ length: 10 }, () => ({ running: 100, best: 120, moveBytes: 0 }))).filter(
      (x) => x.action === "switch",
    ).length,
    1,
  );
});

test("policy values out of range are refused in one line", () => {
  for (const threshold of [0, 1, -0.1, 1.5, Number.NaN])
    assert.throws(
      () => checkAdaptPolicy({ ...DEFAULT_ADAPT_POLICY, threshold }),
      /threshold must be in \(0, 1\)/,
    );
  assert.throws(() => checkAdaptPolicy({ ...DEFAULT_ADAPT_POLICY, holdMs: -1 }), /hold/);
});

function stats(worker: string, stage: number, runs: number, computeMs: number): StatsReplyMsg {
  return {
    t: "stats-reply",
    worker,
    stages: [{ stage, runs, errors: 0, computeMs, computeCpuMs: computeMs, pending: 0 }],
    cpuMs: 0,
    receiveBuffersReused: 0,
    readsPaused: 0,
  } as StatsReplyMsg;
}

test("estimates: per-window compute per run and throughput, smoothed; a step moves them within a few windows", () => {
  const e = new OnlineEstimates({ alpha: 0.3 });
  let runs = 0;
  let ms = 0;
  let done = 0;
  for (let w = 0; w <= 20; w++) {
    const per = w <= 10 ? 5 : 20; // stage time per run, ms: a CPU quota cut at window 10
    runs += 50;
    ms += 50 * per;
    done += 50;
    e.observe([stats("core0", 0, runs, ms)], done, w * 500);
    if (w === 10) assert.ok(Math.abs(e.snapshot().stageMs.get(0)! - 5) < 1e-9);
  }
  const s = e.snapshot();
  assert.ok(s.stageMs.get(0)! > 19, `after ten windows at 20 ms the estimate is ${s.stageMs.get(0)}`);
  assert.ok(Math.abs(s.throughput! - 100) < 1e-9, "50 completions per 500 ms: 100/s");
  assert.equal(s.stageDevice.get(0), "core0");
  e.reset();
  assert.equal(e.snapshot().windows, 0);
  const x = new Ewma(0.5);
  x.add(10);
  x.add(20);
  x.add(Number.NaN);
  assert.equal(x.value, 15);
});
