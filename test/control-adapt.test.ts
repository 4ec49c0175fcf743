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
import { type AdaptPolicy, restartAdaptState } from "../src/runtime/control/adapt-policy.js";
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
  // The change comes at sample 10; the smoothed gain less its deviation passes 15% two samples later, and the
  // hold is 3000 ms at 500 ms a sample.
  assert.equal(switches[0], 18);
  // After the switch the estimates describe the new plan: it runs at the best rate.
  const after = run([...seq.slice(0, 19), ...Array.from({ length: 20 }, () => ({ running: 90, best: 93 }))]);
  assert.equal(after.filter((x) => x.action === "switch").length, 1);
});

/**
 * Two plans A and B whose true throughputs are `truth(t)` (req/s, t in ms), each estimate multiplied by noise
 * of a loaded host (0.6x to 1.6x, independently per sample), evaluated every 500 ms as the adaptation loop
 * does: after a switch the running plan is the other one, the state restarts (restartAdaptState) and three
 * windows pass before the next sample counts. Returns the times of the switches and the plan each went to.
 */
function simulate(
  policy: AdaptPolicy,
  truth: (t: number) => { A: number; B: number },
  ms: number,
  seed = 11,
): Array<{ at: number; to: "A" | "B" }> {
  const r = seededRandom(seed);
  const noise = () => 0.6 + r();
  let running: "A" | "B" = "A";
  let state: AdaptState = {};
  let skip = 0;
  const out: Array<{ at: number; to: "A" | "B" }> = [];
  for (let t = 0; t < ms; t += 500) {
    const tr = truth(t);
    const est = { A: tr.A * noise(), B: tr.B * noise() };
    if (skip > 0) {
      skip--;
      continue;
    }
    const other: "A" | "B" = running === "A" ? "B" : "A";
    const d = decideAdapt(
      state,
      {
        atMs: t,
        running: est[running],
        best: Math.max(est[running], est[other]),
        moveBytes: 0,
        bandwidth: 125e6,
        runningKey: running,
        bestKey: est[other] > est[running] ? other : running,
      },
      policy,
    );
    state = d.state;
    if (d.action === "switch") {
      running = other;
      out.push({ at: t, to: running });
      state = restartAdaptState(state);
      skip = 3;
    }
  }
  return out;
}

/** The policy before hysteresis was made robust: raw gains, no cool-down, no penalty for going back. */
const NAIVE: AdaptPolicy = {
  ...DEFAULT_ADAPT_POLICY,
  smoothing: 1,
  confidence: 0,
  cooldownMs: 0,
  returnThreshold: DEFAULT_ADAPT_POLICY.threshold,
};

test("a loaded host's noisy estimates (0.6x-1.6x) of two plans 5% apart: no switch in 70 s (raw gains flap)", () => {
  const flat = () => ({ A: 100, B: 105 });
  for (const seed of [11, 12, 13, 14]) {
    const naive = simulate({ ...NAIVE, holdMs: 1000 }, flat, 70000, seed);
    assert.ok(naive.length >= 3, `seed ${seed}: raw gains switched ${naive.length} times`);
    assert.deepEqual(simulate(DEFAULT_ADAPT_POLICY, flat, 70000, seed), [], `seed ${seed}`);
  }
});

test("a real change under the same noise switches once and does not go back", () => {
  // At 10 s the running plan A loses half its speed (a link cut); B is then 1.8x A.
  const cut = (t: number) => ({ A: t < 10000 ? 100 : 50, B: 90 });
  for (const seed of [11, 12, 13, 14]) {
    const s = simulate(DEFAULT_ADAPT_POLICY, cut, 70000, seed);
    assert.equal(s.length, 1, `seed ${seed}: ${JSON.stringify(s)}`);
    assert.equal(s[0].to, "B");
    assert.ok(s[0].at >= 13000 && s[0].at < 45000, `seed ${seed}: switched at ${s[0].at} ms`);
  }
});

test("the plan just left is taken back only for a much larger gain and never within the cool-down; within it only such a gain moves on", () => {
  const step = (state: AdaptState, atMs: number, running: number, best: number, bestKey: string) =>
    decideAdapt(
      state,
      { atMs, running, best, moveBytes: 0, bandwidth: 125e6, runningKey: "B", bestKey },
      { ...DEFAULT_ADAPT_POLICY, confidence: 0, smoothing: 1 },
    );
  // Just switched A -> B at 0 ms.
  const left: AdaptState = { switchedAt: 0, left: "A" };
  // A 30% better: over the threshold, under the 50% to go back; C 30% better: switches after the hold.
  const backs = (key: string, gain: number, from: number) => {
    let st = left;
    let n = 0;
    for (let t = from; t < from + 10000; t += 500) {
      const d = step(st, t, 100, 100 * (1 + gain), key);
      st = d.action === "switch" ? restartAdaptState(d.state) : d.state;
      if (d.action === "switch") n++;
      if (d.action === "switch") break;
    }
    return n;
  };
  assert.equal(backs("A", 0.3, 16000), 0);
  assert.equal(backs("C", 0.3, 16000), 1);
  assert.equal(backs("A", 0.8, 16000), 1);
  // Within the cool-down (15 s) not even a large gain takes the plan just left back, and a gain under the return
  // threshold does not move on; one past it (200%) moves on after the hold.
  const within = (key: string, best: number) => {
    let st = left;
    for (let t = 500; t < 15000; t += 500) {
      const d = step(st, t, 100, best, key);
      if (d.action === "switch") return t;
      assert.match(d.reason, d.action === "stay" ? /cooling down/ : /for \d+ of 3000 ms/, `at ${t} ms`);
      st = d.state;
    }
    return undefined;
  };
  assert.equal(within("A", 300), undefined);
  assert.equal(within("C", 140), undefined);
  assert.equal(within("C", 300), 3500);
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
  assert.throws(() => checkAdaptPolicy({ ...DEFAULT_ADAPT_POLICY, smoothing: 0 }), /smoothing/);
  assert.throws(() => checkAdaptPolicy({ ...DEFAULT_ADAPT_POLICY, cooldownMs: -5 }), /cool-down/);
  assert.throws(
    () => checkAdaptPolicy({ ...DEFAULT_ADAPT_POLICY, returnThreshold: 0.1 }),
    /return threshold/,
  );
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

test("estimates: service time per run beside compute time, absent for a stage whose replica does not report it", () => {
  const e = new OnlineEstimates({ alpha: 1 });
  const w = (worker: string, stage: number, runs: number, computeMs: number, serviceMs?: number) => {
    const m = stats(worker, stage, runs, computeMs);
    if (serviceMs !== undefined) m.stages[0].serviceMs = serviceMs;
    return m;
  };
  e.observe([w("a", 0, 0, 0, 0), w("b", 0, 0, 0, 0), w("c", 1, 0, 0)], 0, 0);
  // Stage 0 on two replicas: 10 runs at 5 ms compute, 20 ms service; stage 1's worker reports no service time.
  e.observe([w("a", 0, 4, 20, 80), w("b", 0, 6, 30, 120), w("c", 1, 10, 40)], 10, 500);
  const s = e.snapshot();
  assert.equal(s.stageMs.get(0), 5);
  assert.equal(s.stageServiceMs?.get(0), 20);
  assert.equal(s.stageMs.get(1), 4);
  assert.equal(s.stageServiceMs?.has(1), false);
  e.observe([w("a", 0, 8, 40, 160), w("b", 0, 12, 60), w("c", 1, 20, 80)], 20, 1000);
  assert.equal(
    e.snapshot().stageServiceMs?.get(0),
    20,
    "a window where one replica stopped reporting keeps the last",
  );
});

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
