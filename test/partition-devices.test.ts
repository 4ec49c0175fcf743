import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { seededRandom } from "../src/onnx/prng.js";
import { runBaselines } from "../src/partition/baselines.js";
import { bruteForce } from "../src/partition/brute-force.js";
import { OBJECTIVES, type PlanConstraints, resolveConstraints } from "../src/partition/constraints.js";
import { type Candidate, evaluate, objectiveValue } from "../src/partition/evaluate.js";
import { planExact } from "../src/partition/planner-exact.js";
import type { PlanProblem } from "../src/partition/problem.js";
import { randomProblem } from "../src/partition/random-problem.js";
import { cleave } from "./helpers/cli.js";
import { fleetFile } from "./helpers/fleet.js";

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

/** `k` distinct devices of [lo, hi), drawn with `rnd`. */
function pick(rnd: () => number, lo: number, hi: number, k: number): number[] {
  const out = new Set<number>();
  while (out.size < k) out.add(lo + Math.floor(rnd() * (hi - lo)));
  return [...out];
}

function checkAgainstBrute(p: PlanProblem, c: PlanConstraints, where: string): number {
  const rc = resolveConstraints(p, c);
  let feasible = 0;
  for (const objective of OBJECTIVES) {
    const brute = bruteForce(p, rc, objective);
    const exact = planExact(p, { objective, constraints: rc });
    const at = `${where}, ${objective}`;
    assert.ok(exact.exact, at);
    if (!brute) {
      assert.equal(exact.candidate, undefined, `${at}: brute force found nothing feasible`);
      continue;
    }
    feasible++;
    assert.ok(exact.candidate, `${at}: exact found nothing`);
    const ev = evaluate(p, exact.candidate, rc);
    assert.ok(ev.feasible, `${at}: ${ev.violations.map((v) => v.message).join("; ")}`);
    const want = objectiveValue(brute.evaluation, objective);
    assert.ok(
      close(objectiveValue(ev, objective), want),
      `${at}: exact ${objectiveValue(ev, objective)} vs ${want}`,
    );
  }
  return feasible;
}

test("exact equals brute force with 40 and 64 devices, a few allowed on both sides of bit 32", () => {
  let feasible = 0;
  let highPlans = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const D = seed % 2 ? 40 : 64;
    const rnd = seededRandom(seed * 31);
    // Many copies (some scaled): interchangeable devices and stand-ins across the 32-device word boundary.
    const p = randomProblem(seed + 9000, { devices: D, n: 3 + (seed % 4), identical: 0.8, scaled: 0.4 });
    const allowed = [...pick(rnd, 0, 32, 2), ...pick(rnd, 32, D, 3)];
    const c: PlanConstraints = { devices: allowed.map((d) => p.devices[d].name) };
    if (seed % 5 === 0) c.deviceOrder = [...allowed].sort(() => rnd() - 0.5).map((d) => p.devices[d].name);
    feasible += checkAgainstBrute(p, c, `seed ${seed}, ${D} devices, allowed ${allowed.join(",")}`);
    const lat = planExact(p, { objective: "latency", constraints: resolveConstraints(p, c) });
    if (lat.candidate?.stages.some((s) => s.device >= 32)) highPlans++;
  }
  assert.ok(feasible > 100, `only ${feasible} feasible cases`);
  assert.ok(highPlans > 10, `only ${highPlans} optimal plans use a device above 31`);
});

test("exact equals brute force with every one of 34-36 devices allowed", () => {
  let feasible = 0;
  for (let seed = 1; seed <= 6; seed++) {
    const p = randomProblem(seed + 9500, {
      devices: 33 + (seed % 4),
      n: 3,
      identical: 0.5,
      linkDensity: 0.9,
    });
    feasible += checkAgainstBrute(p, {}, `seed ${seed}, ${p.devices.length} devices`);
  }
  assert.ok(feasible >= 12, `only ${feasible} feasible cases`);
});

/** The best of `samples` random candidates (random cuts, random distinct devices) that are feasible. */
function randomSearch(p: PlanProblem, seed: number, samples: number, objective: (typeof OBJECTIVES)[number]) {
  const rnd = seededRandom(seed);
  const rc = resolveConstraints(p, {});
  let best = Number.POSITIVE_INFINITY;
  let found = 0;
  for (let s = 0; s < samples; s++) {
    const k = 1 + Math.floor(rnd() * Math.min(6, p.n));
    const cuts = [...new Set(Array.from({ length: k - 1 }, () => 1 + Math.floor(rnd() * (p.n - 1))))].sort(
      (a, b) => a - b,
    );
    const bounds = [0, ...cuts, p.n];
    const devices = pick(rnd, 0, p.devices.length, bounds.length - 1);
    const candidate: Candidate = {
      stages: devices.map((device, i) => ({ device, start: bounds[i], end: bounds[i + 1] })),
    };
    const ev = evaluate(p, candidate, rc);
    if (!ev.feasible) continue;
    found++;
    best = Math.min(best, objectiveValue(ev, objective));
  }
  return { best, found };
}

test("40 and 64 devices: the exact planner is never worse than a baseline or a randomised search", () => {
  for (const D of [40, 64]) {
    for (let seed = 1; seed <= 3; seed++) {
      const p = randomProblem(seed * 101 + D, {
        devices: D,
        n: 18,
        identical: 0.3,
        scaled: 0.5,
        tightMemory: 0.3,
      });
      const rc = resolveConstraints(p, {});
      for (const objective of OBJECTIVES) {
        const where = `${D} devices, seed ${seed}, ${objective}`;
        const r = planExact(p, { objective, constraints: rc, timeLimitMs: 4000 });
        assert.ok(r.candidate, `${where}: no plan`);
        const ev = evaluate(p, r.candidate, rc);
        assert.ok(ev.feasible, where);
        const value = objectiveValue(ev, objective);
        assert.ok(close(value, r.value), `${where}: reported ${r.value}, priced ${value}`);
        assert.ok(r.lowerBound <= value * (1 + 1e-9), `${where}: bound ${r.lowerBound} above ${value}`);
        for (const b of runBaselines(p, rc, objective)) {
          if (!b.feasible || !b.evaluation) continue;
          const bv = objectiveValue(b.evaluation, objective);
          assert.ok(value <= bv * (1 + 1e-9), `${where}: baseline ${b.name} ${bv} beats ${value}`);
          assert.ok(r.lowerBound <= bv * (1 + 1e-9), `${where}: bound above baseline ${b.name}`);
        }
        const rs = randomSearch(p, seed * 7 + D, 3000, objective);
        assert.ok(rs.found > 0, `${where}: the random search found no feasible plan`);
        assert.ok(value <= rs.best * (1 + 1e-9), `${where}: random search ${rs.best} beats ${value}`);
        assert.ok(r.lowerBound <= rs.best * (1 + 1e-9), `${where}: bound above a random plan`);
      }
    }
  }
});

test("cleave plan on a generated fleet of 64 devices of 8 kinds: exact throughput, one JSON document", () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-fleet-"));
  const file = join(dir, "big.yaml");
  writeFileSync(file, JSON.stringify(fleetFile(64, { variant: "grouped" })));
  const r = cleave(
    // Pipelines only: the replica search covers clusters of up to 30 devices and says so beyond.
    [
      "plan",
      "zoo:efficientnet_b0",
      "--cluster",
      file,
      "--objective",
      "throughput",
      "--json",
      "--no-replicas",
    ],
    {
      timeoutMs: 180_000,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.equal(plan.planner.exact, true);
  assert.ok(plan.stages.length >= 1);
  const single = plan.baselines.find((b: { name: string }) => b.name === "single");
  assert.ok(plan.totals.throughput >= single.totals.throughput * (1 - 1e-9));
  assert.ok(plan.stages.every((s: { device: string }) => /^d\d+$/.test(s.device)));
});

test("with replica groups on 64 devices: never worse than any baseline, a proven capacity bound, latency proven optimal", () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-fleet-"));
  const file = join(dir, "big.yaml");
  writeFileSync(file, JSON.stringify(fleetFile(64, { variant: "grouped" })));
  const plan = (objective: string) => {
    const r = cleave(["plan", "zoo:efficientnet_b0", "--cluster", file, "--objective", objective, "--json"], {
      timeoutMs: 180_000,
    });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const t = plan("throughput");
  for (const b of t.baselines.filter((x: { feasible: boolean }) => x.feasible))
    assert.ok(t.totals.throughput >= b.totals.throughput * (1 - 1e-9), `baseline ${b.name} beats the plan`);
  // The bound is on the time between inferences: positive, and never above the plan's.
  assert.ok(t.planner.lowerBound > 0, "a real bound, not 0");
  assert.ok(t.planner.lowerBound <= (1 / t.totals.throughput) * (1 + 1e-9));
  const l = plan("latency");
  assert.equal(l.planner.exact, true, l.planner.method);
});
