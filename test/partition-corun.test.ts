import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../src/onnx/prng.js";
import { bruteForce } from "../src/partition/brute-force.js";
import { type PlanConstraints, resolveConstraints } from "../src/partition/constraints.js";
import { evaluate } from "../src/partition/evaluate.js";
import { paretoFront } from "../src/partition/planner-pareto.js";
import { planExact } from "../src/partition/planner-exact.js";
import type { PlanProblem } from "../src/partition/problem.js";
import { randomProblem } from "../src/partition/random-problem.js";

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

/**
 * Every device on one host, slowed by a factor per device type (interchangeable devices stay so), and on odd
 * seeds spending CPU time on the bytes it moves (up to the time of a mean position per mean boundary), and on
 * seeds that are multiples of 4 losing some time per inference to the coordinator (up to three positions').
 */
function onOneHost(p: PlanProblem, seed: number): PlanProblem {
  const rnd = seededRandom(seed);
  const byType = new Map<number, { coRun: number; io: number; coord: number }>();
  const meanBytes = p.cutBytes.reduce((a, b) => a + b, 0) / p.cutBytes.length;
  const meanTime = p.prefix[0][p.n] / p.n;
  for (const d of p.devices)
    if (!byType.has(d.type))
      byType.set(d.type, {
        coRun: 1 + rnd() * 1.2,
        io: seed % 2 === 1 ? (rnd() * meanTime) / meanBytes : 0,
        coord: seed % 4 === 0 ? rnd() * 3 * meanTime : 0,
      });
  return {
    ...p,
    devices: p.devices.map((d) => {
      const t = byType.get(d.type)!;
      return {
        ...d,
        host: 0,
        coRun: t.coRun,
        ...(t.io > 0 ? { transferCpu: t.io } : {}),
        ...(t.coord > 0 ? { coordinatorCpu: t.coord } : {}),
      };
    }),
  };
}

test("co-run: a stage is slowed only beside another stage of its host, and only in the pipeline period", () => {
  const base = randomProblem(11, { devices: 3 });
  const p: PlanProblem = {
    ...base,
    devices: base.devices.map((d, i) => (i < 2 ? { ...d, host: 0, coRun: 1.5 } : { ...d })),
  };
  const rc = resolveConstraints(p, {});
  const n = p.n;
  const cut = Math.floor(n / 2);
  const plain = (c: Parameters<typeof evaluate>[1]) => evaluate(base, c, resolveConstraints(base, {}));
  // Two devices of the host: both stage periods x1.5, latency unchanged.
  const two = {
    stages: [
      { device: 0, start: 0, end: cut },
      { device: 1, start: cut, end: n },
    ],
  };
  const a = evaluate(p, two, rc);
  const b = plain(two);
  assert.equal(a.latency, b.latency);
  assert.deepEqual(
    a.stages.map((s) => s.period),
    b.stages.map((s) => s.time * 1.5),
  );
  const linkMax = Math.max(0, ...a.links.map((l) => l.time));
  assert.ok(close(a.bottleneck, Math.max(linkMax, ...b.stages.map((s) => s.time * 1.5))));
  // A host device beside a device of no host, and a device alone: no slowdown.
  const mixed = {
    stages: [
      { device: 0, start: 0, end: cut },
      { device: 2, start: cut, end: n },
    ],
  };
  assert.equal(evaluate(p, mixed, rc).bottleneck, plain(mixed).bottleneck);
  const one = { stages: [{ device: 1, start: 0, end: n }] };
  assert.equal(evaluate(p, one, rc).bottleneck, plain(one).bottleneck);
  // CPU time per byte moved: each stage pays for the bytes at both of its boundaries, alone or not.
  const io = 1e-9;
  const q: PlanProblem = { ...p, devices: p.devices.map((d) => ({ ...d, transferCpu: io })) };
  const alone = evaluate(q, one, rc);
  assert.ok(close(alone.stages[0].period!, plain(one).stages[0].time + io * (p.cutBytes[0] + p.cutBytes[n])));
  const piped = evaluate(q, two, rc);
  assert.ok(close(piped.stages[1].period!, b.stages[1].time * 1.5 + io * (p.cutBytes[cut] + p.cutBytes[n])));
  // The coordinator's share: added to a stage's period beside another stage of its host, never alone.
  const coord = 2e-4;
  const r: PlanProblem = { ...p, devices: p.devices.map((d) => ({ ...d, coordinatorCpu: coord })) };
  const shared = evaluate(r, two, rc);
  assert.deepEqual(
    shared.stages.map((s) => s.coordinatorCpu),
    [coord, coord],
  );
  shared.stages.forEach((s, k) => {
    assert.ok(close(s.period!, b.stages[k].time * 1.5 + coord));
  });
  assert.equal(shared.latency, b.latency);
  assert.equal(evaluate(r, one, rc).bottleneck, plain(one).bottleneck);
  assert.equal(evaluate(r, mixed, rc).bottleneck, plain(mixed).bottleneck);
});

test("co-run and transfer CPU: exact throughput planner equals brute force when every device shares one host", () => {
  let pipelined = 0;
  let single = 0;
  for (let seed = 1; seed <= 120; seed++) {
    const p = onOneHost(
      randomProblem(seed, seed % 3 === 0 ? { devices: 4, identical: 0.7, linkDensity: 0, shared: 1 } : {}),
      seed * 13,
    );
    const rnd = seededRandom(seed * 5);
    const c: PlanConstraints = {};
    if (seed % 2 === 0 && rnd() < 0.5) c.maxLinkBytes = 50 + rnd() * 400;
    const rc = resolveConstraints(p, c);
    const brute = bruteForce(p, rc, "throughput");
    const exact = planExact(p, { objective: "throughput", constraints: rc });
    const where = `seed ${seed}`;
    assert.ok(exact.exact, where);
    if (!brute) {
      assert.equal(exact.candidate, undefined, where);
      continue;
    }
    assert.ok(exact.candidate, `${where}: exact found nothing`);
    const ev = evaluate(p, exact.candidate, rc);
    assert.ok(ev.feasible, where);
    assert.ok(
      close(ev.bottleneck, brute.evaluation.bottleneck),
      `${where}: ${ev.bottleneck} vs ${brute.evaluation.bottleneck}`,
    );
    assert.ok(close(exact.value, ev.bottleneck), where);
    if (exact.candidate.stages.length > 1) pipelined++;
    else single++;
  }
  // Both outcomes occur: the slowdown sometimes makes one device better than a pipeline.
  assert.ok(pipelined > 20, `only ${pipelined} pipelined optima`);
  assert.ok(single > 5, `only ${single} single-device optima`);
});

test("co-run: the Pareto front holds no point dominated once the slowdown is priced", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const p = onOneHost(randomProblem(seed), seed);
    const f = paretoFront(p, { constraints: resolveConstraints(p, {}) });
    for (const x of f.points)
      for (const y of f.points) {
        if (x === y) continue;
        const dom =
          y.latency <= x.latency &&
          y.bottleneck <= x.bottleneck &&
          y.energy <= x.energy &&
          (y.latency < x.latency || y.bottleneck < x.bottleneck || y.energy < x.energy);
        assert.ok(!dom, `seed ${seed}: a front point is dominated`);
      }
  }
});
