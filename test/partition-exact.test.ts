import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../src/onnx/prng.js";
import { bruteForce } from "../src/partition/brute-force.js";
import {
  OBJECTIVES,
  type Objective,
  type PlanConstraints,
  resolveConstraints,
} from "../src/partition/constraints.js";
import { evaluate, objectiveValue } from "../src/partition/evaluate.js";
import { deviceDominance } from "../src/partition/device-dominance.js";
import { planExact } from "../src/partition/planner-exact.js";
import type { PlanProblem } from "../src/partition/problem.js";
import { randomProblem } from "../src/partition/random-problem.js";

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

/** Random constraints scaled to the problem: limits near the unconstrained optima, so some bind. */
function randomConstraints(p: PlanProblem, seed: number): PlanConstraints {
  const rnd = seededRandom(seed);
  const free = resolveConstraints(p, {});
  const c: PlanConstraints = {};
  const lat = bruteForce(p, free, "latency");
  if (!lat) return c;
  if (rnd() < 0.3) c.maxLatency = lat.evaluation.latency * (1 + rnd());
  if (rnd() < 0.3) c.minThroughput = lat.evaluation.throughput * (0.5 + rnd());
  if (rnd() < 0.25) c.maxEnergy = lat.evaluation.energy * (0.7 + rnd());
  if (rnd() < 0.2) c.maxLinkBytes = 50 + rnd() * 400;
  if (rnd() < 0.2 && p.devices.length > 1) c.devices = p.devices.filter(() => rnd() < 0.7).map((d) => d.name);
  if (c.devices?.length === 0) delete c.devices;
  if (rnd() < 0.15) c.deviceOrder = p.devices.map((d) => d.name).sort(() => rnd() - 0.5);
  return c;
}

test("exact planner equals brute force on 240 random problems, every objective, with constraints", () => {
  let feasible = 0;
  let grouped = 0;
  let constrained = 0;
  for (let seed = 1; seed <= 240; seed++) {
    // Every third problem: a shared medium only, so identical devices are interchangeable.
    const p = randomProblem(
      seed,
      seed % 3 === 0 ? { devices: 4 + ((seed / 3) % 2), identical: 0.7, linkDensity: 0, shared: 1 } : {},
    );
    if (new Set(p.devices.map((d) => d.type)).size < p.devices.length) grouped++;
    const c = seed % 2 === 0 ? randomConstraints(p, seed * 7) : {};
    if (Object.keys(c).length > 0) constrained++;
    const rc = resolveConstraints(p, c);
    for (const objective of OBJECTIVES) {
      const brute = bruteForce(p, rc, objective);
      const exact = planExact(p, { objective, constraints: rc });
      const where = `seed ${seed}, ${objective}, constraints ${JSON.stringify(c)}`;
      assert.ok(exact.exact, where);
      if (!brute) {
        assert.equal(exact.candidate, undefined, `${where}: brute force found nothing feasible`);
        continue;
      }
      feasible++;
      assert.ok(
        exact.candidate,
        `${where}: exact found nothing, brute force ${objectiveValue(brute.evaluation, objective)}`,
      );
      const ev = evaluate(p, exact.candidate, rc);
      assert.ok(ev.feasible, `${where}: ${ev.violations.map((v) => v.message).join("; ")}`);
      const want = objectiveValue(brute.evaluation, objective);
      assert.ok(
        close(objectiveValue(ev, objective), want),
        `${where}: exact ${objectiveValue(ev, objective)} vs brute ${want}`,
      );
      assert.ok(close(exact.value, want), `${where}: reported ${exact.value} vs ${want}`);
    }
  }
  // The sample must exercise what it claims to.
  assert.ok(feasible > 400, `only ${feasible} feasible cases`);
  assert.ok(grouped > 20, `only ${grouped} problems with identical devices grouped`);
  assert.ok(constrained > 60, `only ${constrained} constrained problems`);
});

test("exact planner equals brute force when the input device feeds the first stage (encode, feed)", () => {
  let binding = 0;
  let compared = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const p = randomProblem(seed + 7000, { inputFeed: 1 });
    assert.ok(p.inputFeed, `seed ${seed}: no feed`);
    // Every other problem keeps the input device from running stages (a camera that only holds the input).
    const c = seed % 3 === 0 ? randomConstraints(p, seed * 11) : {};
    if (seed % 2 === 1 && p.devices.length > 1 && c.devices === undefined)
      c.devices = p.devices.filter((_, d) => d !== p.inputDevice).map((d) => d.name);
    const rc = resolveConstraints(p, c);
    for (const objective of OBJECTIVES) {
      const brute = bruteForce(p, rc, objective);
      const exact = planExact(p, { objective, constraints: rc });
      const where = `seed ${seed}, ${objective}, constraints ${JSON.stringify(c)}`;
      if (!brute) {
        assert.equal(exact.candidate, undefined, `${where}: brute force found nothing feasible`);
        continue;
      }
      assert.ok(exact.candidate, `${where}: exact found nothing`);
      const ev = evaluate(p, exact.candidate, rc);
      const want = objectiveValue(brute.evaluation, objective);
      assert.ok(
        close(objectiveValue(ev, objective), want),
        `${where}: exact ${objectiveValue(ev, objective)} vs ${want}`,
      );
      assert.ok(close(exact.value, want), `${where}: reported ${exact.value} vs ${want}`);
      compared++;
      if (objective === "throughput") {
        // The same problem priced without the feed (the encode then in the first stage's period).
        const { inputFeed: _, ...plain } = p;
        const without = bruteForce(plain, rc, objective);
        if (!without || !close(objectiveValue(without.evaluation, objective), want)) binding++;
      }
    }
  }
  assert.ok(compared > 250, `only ${compared} compared`);
  // Problems whose best throughput the feed changes.
  assert.ok(binding >= 15, `the feed changed the best throughput of only ${binding} problems`);
});

test("exact with device dominance (faster copies stand in for slower ones) equals brute force", () => {
  let withStandIns = 0;
  for (let seed = 2000; seed < 2150; seed++) {
    const p = randomProblem(seed, {
      devices: 4 + (seed % 2),
      identical: 0.8,
      scaled: 0.7,
      linkDensity: 0,
      shared: 1,
      splitMedia: seed % 2 === 0,
    });
    const c = seed % 3 === 0 ? randomConstraints(p, seed) : {};
    const rc = resolveConstraints(p, c);
    if (deviceDominance(p, rc, true).some((m) => m !== 0)) withStandIns++;
    for (const objective of OBJECTIVES) {
      const brute = bruteForce(p, rc, objective);
      const exact = planExact(p, { objective, constraints: rc });
      const where = `seed ${seed}, ${objective}, ${JSON.stringify(c)}`;
      assert.equal(exact.candidate === undefined, brute === undefined, where);
      if (!brute) continue;
      const want = objectiveValue(brute.evaluation, objective);
      assert.ok(
        close(objectiveValue(evaluate(p, exact.candidate!, rc), objective), want),
        `${where}: ${exact.value} vs ${want}`,
      );
    }
  }
  assert.ok(withStandIns > 50, `only ${withStandIns} problems where a device stands in for another`);
});

test("throughput tie-break returns the least latency among plans with the optimal bottleneck", () => {
  for (let seed = 300; seed < 340; seed++) {
    const p = randomProblem(seed);
    const rc = resolveConstraints(p, {});
    const exact = planExact(p, { objective: "throughput", constraints: rc });
    const brute = bruteForce(p, rc, "throughput");
    if (!brute) continue;
    const ev = evaluate(p, exact.candidate!, rc);
    // Least latency among all candidates within rounding of the optimal bottleneck.
    const tie = bruteForce(
      p,
      resolveConstraints(p, { minThroughput: 1 / (brute.evaluation.bottleneck * (1 + 1e-9)) }),
      "latency",
    );
    assert.ok(tie);
    assert.ok(
      close(ev.latency, tie.evaluation.latency),
      `seed ${seed}: ${ev.latency} vs ${tie.evaluation.latency}`,
    );
  }
});

test("exact planner handles 4-12 identical devices quickly through grouping", () => {
  for (const D of [4, 8, 12]) {
    const p = randomProblem(1000 + D, { n: 12, devices: D, identical: 1, linkDensity: 0, shared: 1 });
    assert.equal(new Set(p.devices.map((d) => d.type)).size <= 3, true, "input/output devices stay apart");
    const objective: Objective = "throughput";
    const r = planExact(p, { objective, constraints: resolveConstraints(p, {}) });
    assert.ok(r.exact);
    assert.ok(r.stats.labels < 20000, `${r.stats.labels} labels for ${D} identical devices`);
  }
});
