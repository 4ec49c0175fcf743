import assert from "node:assert/strict";
import test from "node:test";
import { bruteForceReplicas } from "../src/partition/brute-force.js";
import { type PlanConstraints, type Objective, resolveConstraints } from "../src/partition/constraints.js";
import { evaluate, objectiveValue } from "../src/partition/evaluate.js";
import { asReplicaCandidate, evaluateReplicas } from "../src/partition/evaluate-replicas.js";
import { capacityBound, planReplicas } from "../src/partition/planner-replicas.js";
import { assignDeviceTypes, type PlanProblem, type ProblemDevice } from "../src/partition/problem.js";
import { randomProblem } from "../src/partition/random-problem.js";
import { seededRandom } from "../src/onnx/prng.js";

const OBJECTIVES: Objective[] = ["throughput", "latency", "energy"];

/** Random constraints that bind now and then, from the problem's own single-device figures. */
function randomConstraints(p: PlanProblem, seed: number): PlanConstraints {
  const rnd = seededRandom(seed);
  const one = resolveConstraints(p, {});
  const singles = p.devices.map((_, d) => evaluate(p, { stages: [{ device: d, start: 0, end: p.n }] }, one));
  const c: PlanConstraints = {};
  const ok = singles.filter((e) => e.throughput > 0 && Number.isFinite(e.latency));
  const pick = () => ok[Math.floor(rnd() * ok.length)] ?? { throughput: 1, latency: 1, energy: 1 };
  if (rnd() < 0.3) c.minThroughput = pick().throughput * (0.8 + rnd() * 1.2);
  if (rnd() < 0.25) c.maxLatency = pick().latency * (0.8 + rnd() * 0.6);
  if (rnd() < 0.2) c.maxEnergy = pick().energy * (0.8 + rnd() * 0.6);
  if (rnd() < 0.2) c.maxLinkBytes = 50 + rnd() * 400;
  if (p.devices.length > 1 && rnd() < 0.2) c.devices = p.devices.filter(() => rnd() < 0.7).map((d) => d.name);
  if (p.devices.length > 2 && rnd() < 0.15)
    c.deviceOrder = p.devices.map((d) => d.name).sort(() => rnd() - 0.5);
  if (c.devices?.length === 0) delete c.devices;
  return c;
}

const problemOf = (seed: number, devices?: number) =>
  randomProblem(seed, {
    n: 3 + (seed % 4),
    hosts: 0.4,
    transferCpu: 0.4,
    inputFeed: 0.3,
    ...(devices ? { devices } : {}),
  });

test("replicas: a group of one device prices exactly as evaluate() prices its stage", () => {
  let compared = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const p = problemOf(seed);
    const rc = resolveConstraints(p, randomConstraints(p, seed));
    const rnd = seededRandom(seed * 7);
    // A random pipeline: random cuts, random distinct devices (a device twice too, now and then).
    const S = 1 + Math.floor(rnd() * Math.min(p.n, p.devices.length));
    const cuts = [...new Set(Array.from({ length: S - 1 }, () => 1 + Math.floor(rnd() * (p.n - 1))))].sort(
      (a, b) => a - b,
    );
    const bounds = [0, ...cuts, p.n];
    const order = p.devices.map((_, d) => d).sort(() => rnd() - 0.5);
    const stages = bounds.slice(1).map((end, k) => ({
      device: rnd() < 0.1 ? order[0] : order[k % order.length],
      start: bounds[k],
      end,
    }));
    const c = { stages };
    const a = evaluate(p, c, rc);
    const b = evaluateReplicas(p, asReplicaCandidate(c), rc);
    assert.equal(b.latency, a.latency, `seed ${seed}: latency`);
    assert.equal(b.bottleneck, a.bottleneck, `seed ${seed}: bottleneck`);
    assert.equal(b.energy, a.energy, `seed ${seed}: energy`);
    assert.equal(b.feasible, a.feasible, `seed ${seed}: feasible`);
    assert.deepEqual(
      b.violations.map((v) => v.message),
      a.violations.map((v) => v.message),
      `seed ${seed}: violations`,
    );
    assert.deepEqual(b.links, a.links, `seed ${seed}: link loads`);
    a.stages.forEach((s, k) => {
      assert.equal(b.stages[k].time, s.time);
      assert.equal(b.stages[k].period, s.period ?? s.time, `seed ${seed}: stage ${k} period`);
      assert.equal(b.stages[k].memory, s.memory);
      assert.equal(b.stages[k].energy, s.energy);
      assert.equal(b.stages[k].replicas[0].coRun, s.coRun);
    });
    compared++;
  }
  assert.equal(compared, 300);
});

test("replicas: the exact planner equals brute force over cuts and replica groups on random problems", () => {
  let replicated = 0;
  let feasible = 0;
  for (let seed = 1; seed <= 160; seed++) {
    const p = problemOf(seed, 1 + (seed % 4));
    const constraints = randomConstraints(p, seed + 1000);
    const rc = resolveConstraints(p, constraints);
    for (const objective of OBJECTIVES) {
      const brute = bruteForceReplicas(p, rc, objective);
      const r = planReplicas(p, { objective, constraints: rc });
      const tag = `seed ${seed} ${objective} ${JSON.stringify(constraints)}`;
      assert.equal(r.exact, true, tag);
      if (!brute) {
        assert.equal(r.candidate, undefined, `${tag}: brute force finds nothing feasible`);
        continue;
      }
      feasible++;
      assert.ok(r.candidate, `${tag}: planner finds nothing, brute force ${JSON.stringify(brute.candidate)}`);
      const bv = objectiveValue(brute.evaluation, objective);
      // Its objective is the evaluator's on its own output, and equals brute force's optimum.
      const ev = evaluateReplicas(p, r.candidate, rc);
      assert.ok(ev.feasible, `${tag}: planner's plan infeasible: ${ev.violations[0]?.message}`);
      assert.equal(r.value, objectiveValue(ev, objective), tag);
      assert.ok(
        Math.abs(r.value - bv) <= 1e-9 * Math.abs(bv),
        `${tag}: planner ${r.value} (${JSON.stringify(r.candidate)}), brute force ${bv} (${JSON.stringify(brute.candidate)})`,
      );
      if (brute.candidate.stages.some((s) => s.devices.length > 1)) replicated++;
    }
  }
  // The test means something only if replicas win often and constraints leave most problems feasible.
  assert.ok(replicated > 25, `only ${replicated} optima use a replica group`);
  assert.ok(feasible > 250, `only ${feasible} feasible cases`);
});

/** Two devices joined by one link; positions of equal time; device 1 `speed` times faster. */
function pair(opts: {
  n: number;
  time: number;
  speed?: number;
  latency: number;
  perByte: number;
  bytes: number;
}) {
  const { n, time, latency, perByte, bytes } = opts;
  const speed = opts.speed ?? 1;
  const pre = (t: number) => Float64Array.from({ length: n + 1 }, (_, q) => q * t);
  const zero = () => new Float64Array(n + 1);
  const dev = (name: string): ProblemDevice => ({
    name,
    power: 2,
    memory: 1e9,
    macsPerSecond: 1e9,
    memoryBandwidth: 1e9,
    type: 0,
  });
  const tensors = [
    { name: "in", bytes, def: -1, lastUse: 0, uses: [0] },
    ...Array.from({ length: n - 1 }, (_, q) => ({
      name: `t${q}`,
      bytes,
      def: q,
      lastUse: q + 1,
      uses: [q + 1],
    })),
    { name: "out", bytes, def: n - 1, lastUse: n, uses: [n] },
  ];
  const p: PlanProblem = {
    n,
    devices: [dev("a"), dev("b")],
    links: [{ name: "a-b", devices: [0, 1], latency, secondsPerByte: perByte, joulesPerByte: 0 }],
    linkIndex: Int32Array.from([-1, 0, 0, -1]),
    inputDevice: 0,
    outputDevice: 0,
    prefix: [pre(time), pre(time / speed)],
    startCost: [zero(), zero()],
    endCost: [zero(), zero()],
    macs: new Float64Array(n),
    cutBytes: new Float64Array(n + 1).fill(bytes),
    tensors,
    memEnd: [new Int32Array(n).fill(n), new Int32Array(n).fill(n)],
    memory: () => 0,
    setCost: (d, ps) => ({ time: ps.length * (d === 0 ? time : time / speed), memory: 0 }),
  };
  assignDeviceTypes(p);
  return p;
}

test("replicas: two equal devices give twice one device's throughput when the link keeps up (closed form)", () => {
  const [n, t, lat, spb, B] = [4, 0.01, 1e-4, 1e-8, 1e4];
  const p = pair({ n, time: t, latency: lat, perByte: spb, bytes: B });
  const rc = resolveConstraints(p, {});
  const T = n * t;
  const hop = lat + B * spb;
  const both = evaluateReplicas(p, { stages: [{ devices: [0, 1], start: 0, end: n }] }, rc);
  assert.deepEqual(
    both.stages[0].replicas.map((r) => r.share),
    [0.5, 0.5],
  );
  assert.ok(Math.abs(both.bottleneck - T / 2) < 1e-15, `period ${both.bottleneck}, expected ${T / 2}`);
  // Half the requests cross to b and back: the link is busy half a hop each way per inference.
  assert.ok(Math.abs(both.links[0].time - hop) < 1e-15);
  assert.ok(Math.abs(both.links[0].bytes - B) < 1e-9);
  assert.ok(Math.abs(both.latency - (T + hop)) < 1e-15, "a replica does not shorten one request");
  const r = planReplicas(p, { objective: "throughput", constraints: rc });
  assert.ok(r.exact);
  assert.deepEqual(r.candidate?.stages, [{ devices: [0, 1], start: 0, end: n }]);
  assert.ok(Math.abs(1 / r.value - 2 / T) < 1e-9 * (2 / T), `throughput ${1 / r.value}, expected ${2 / T}`);

  // When the link is the slower, it sets the pace: half a hop in, half a hop out per inference.
  const slow = pair({ n, time: t, latency: lat, perByte: 1e-5, bytes: B });
  const s = evaluateReplicas(slow, { stages: [{ devices: [0, 1], start: 0, end: n }] }, rc);
  assert.ok(Math.abs(s.bottleneck - (lat + B * 1e-5)) < 1e-12);
});

test("replicas: an unequal pair shares requests by speed (closed form)", () => {
  const [n, t] = [3, 0.03];
  const p = pair({ n, time: t, speed: 3, latency: 0, perByte: 0, bytes: 1 });
  const rc = resolveConstraints(p, {});
  const e = evaluateReplicas(p, { stages: [{ devices: [0, 1], start: 0, end: n }] }, rc);
  const [ta, tb] = [n * t, (n * t) / 3];
  assert.deepEqual(
    e.stages[0].replicas.map((r) => Math.round(r.share * 1e12) / 1e12),
    [0.25, 0.75],
  );
  assert.ok(Math.abs(e.bottleneck - 1 / (1 / ta + 1 / tb)) < 1e-15);
  assert.ok(Math.abs(e.latency - (0.25 * ta + 0.75 * tb)) < 1e-15);
});

test("replicas: a first stage the input device feeds runs no faster than the feed, and gets no replica there", () => {
  const [n, t, encode] = [3, 0.03, 0.004];
  const base = pair({ n, time: t, speed: 3, latency: 0, perByte: 0, bytes: 1 });
  // Device a holds the input and encodes it for b: the encode is in b's start cost (its latency), not its period.
  const fedBy = (feed: number): PlanProblem => ({
    ...base,
    startCost: base.startCost.map((c, d) =>
      d === 1 ? Float64Array.from(c, (x, b) => (b === 0 ? x + encode : x)) : c,
    ),
    inputFeed: { encode, feed },
  });
  const tb = (n * t) / 3;
  const whole = (devices: number[]) => ({ stages: [{ devices, start: 0, end: n }] });
  for (const feed of [0.01, 0.05]) {
    const p = fedBy(feed);
    const rc = resolveConstraints(p, {});
    const period = Math.max(tb, feed);
    const alone = evaluate(p, { stages: [{ device: 1, start: 0, end: n }] }, rc);
    assert.ok(Math.abs(alone.bottleneck - period) < 1e-15, `feed ${feed}: b alone every ${alone.bottleneck}`);
    assert.ok(Math.abs(alone.latency - (tb + encode)) < 1e-15, "the encode is on the request's path");
    assert.equal(alone.stages[0].inputFeed, feed);
    const group = evaluateReplicas(p, whole([0, 1]), rc);
    assert.deepEqual(
      group.stages[0].replicas.map((r) => r.share),
      [0, 1],
      `feed ${feed}: the input device's own replica takes nothing`,
    );
    assert.ok(Math.abs(group.bottleneck - period) < 1e-15, `feed ${feed}: group every ${group.bottleneck}`);
    assert.equal(evaluateReplicas(p, whole([1]), rc).bottleneck, alone.bottleneck);
    // The planner leaves the zero-share replica out (a deployment cannot weight one by 0).
    const r = planReplicas(p, { objective: "throughput", constraints: rc });
    assert.ok(r.candidate);
    for (const st of r.candidate.stages)
      if (st.start === 0) assert.ok(!(st.devices.includes(0) && st.devices.length > 1), JSON.stringify(st));
  }
});

test("replicas: a search cut short says so and keeps a valid bound", () => {
  const p = randomProblem(7, { n: 12, devices: 6, identical: 0 });
  const rc = resolveConstraints(p, {});
  const full = planReplicas(p, { objective: "throughput", constraints: rc });
  assert.ok(full.exact);
  const cut = planReplicas(p, { objective: "throughput", constraints: rc, maxLabels: 5 });
  assert.equal(cut.exact, false);
  assert.match(cut.limited ?? "", /label budget/);
  assert.ok(cut.lowerBound <= full.value + 1e-12);
  const small = planReplicas(p, { objective: "throughput", constraints: rc, maxGroup: 1 });
  assert.equal(small.exact, false);
  assert.match(small.limited ?? "", /at most 1 devices/);
  assert.ok(small.value >= full.value - 1e-12);
});

test("replicas: on a large fleet the group size is bounded and the result says so", () => {
  const p = randomProblem(11, { n: 4, devices: 12, tightMemory: 0 });
  const rc = resolveConstraints(p, {});
  const r = planReplicas(p, { objective: "throughput", constraints: rc });
  assert.equal(r.exact, false);
  assert.match(r.limited ?? "", /groups of at most 2 devices searched \(12 devices/);
  // Never worse than data parallelism over every device, which it is seeded with.
  const dp = evaluateReplicas(
    p,
    { stages: [{ devices: p.devices.map((_, d) => d), start: 0, end: p.n }] },
    rc,
  );
  if (dp.feasible) assert.ok(r.value <= dp.bottleneck);
  assert.ok(r.lowerBound <= r.value);
});

test("replicas: the capacity bound never exceeds the true optimum (brute force, no constraints)", () => {
  let tight = 0;
  for (let seed = 1; seed <= 120; seed++) {
    const p = problemOf(seed, 1 + (seed % 4));
    const rc = resolveConstraints(p, {});
    const brute = bruteForceReplicas(p, rc, "throughput");
    if (!brute) continue;
    const all = p.devices.map((_, d) => d);
    const bound = capacityBound(p, all);
    const best = objectiveValue(brute.evaluation, "throughput");
    assert.ok(bound <= best * (1 + 1e-9), `seed ${seed}: bound ${bound} above the optimum ${best}`);
    if (bound >= best * 0.5) tight++;
  }
  assert.ok(tight > 0, "the bound is more than a token");
});
