import assert from "node:assert/strict";
import { test } from "node:test";
import { allCandidates } from "../src/partition/brute-force.js";
import { resolveConstraints } from "../src/partition/constraints.js";
import { evaluate } from "../src/partition/evaluate.js";
import { dominatesVec } from "../src/partition/nsga2.js";
import { type ParetoPoint, paretoFront } from "../src/partition/planner-pareto.js";
import { randomProblem } from "../src/partition/random-problem.js";

const vec = (x: { latency: number; bottleneck: number; energy: number }) => [
  x.latency,
  x.bottleneck,
  x.energy,
];
const near = (a: number[], b: number[]) =>
  a.every((v, i) => Math.abs(v - b[i]) <= 1e-9 * Math.max(1, Math.abs(v)));

function checkFront(points: ParetoPoint[], where: string) {
  for (const a of points) {
    for (const b of points)
      assert.ok(!dominatesVec(vec(a), vec(b)), `${where}: ${vec(a)} dominates ${vec(b)}`);
  }
}

test("exact Pareto front equals the brute-force front on 120 random problems", () => {
  let compared = 0;
  for (let seed = 1; seed <= 120; seed++) {
    const p = randomProblem(
      seed,
      seed % 3 === 0 ? { devices: 4, identical: 0.7, linkDensity: 0, shared: 1 } : {},
    );
    const rc = resolveConstraints(p, seed % 4 === 0 ? { maxLinkBytes: 400 } : {});
    const brute: number[][] = [];
    for (const c of allCandidates(p, rc)) {
      if (!c.evaluation.feasible) continue;
      const v = vec(c.evaluation);
      if (brute.some((b) => dominatesVec(b, v) || near(b, v))) continue;
      for (let i = brute.length - 1; i >= 0; i--) if (dominatesVec(v, brute[i])) brute.splice(i, 1);
      brute.push(v);
    }
    const r = paretoFront(p, { constraints: rc });
    assert.equal(r.method, "exact", `seed ${seed}`);
    checkFront(r.points, `seed ${seed}`);
    for (const x of r.points)
      assert.ok(evaluate(p, x.candidate, rc).feasible, `seed ${seed}: infeasible point`);
    const got = r.points.map(vec);
    assert.equal(
      got.length,
      brute.length,
      `seed ${seed}: ${JSON.stringify(got)} vs ${JSON.stringify(brute)}`,
    );
    for (const b of brute)
      assert.ok(
        got.some((g) => near(g, b)),
        `seed ${seed}: front misses ${b}`,
      );
    if (brute.length > 1) compared++;
  }
  assert.ok(compared > 40, `only ${compared} problems with a front of more than one point`);
});

test("NSGA-II fallback: no dominated point, single-objective optima on the front", () => {
  for (let seed = 500; seed < 510; seed++) {
    const p = randomProblem(seed, { n: 14, devices: 5, identical: 0 });
    const rc = resolveConstraints(p, {});
    // A budget of 1 label forces the fallback.
    const r = paretoFront(p, { constraints: rc, maxLabels: 1, timeLimitMs: 300, seed });
    if (r.points.length === 0) continue;
    assert.equal(r.method, "nsga2");
    checkFront(r.points, `seed ${seed}`);
    for (const [objective, o] of Object.entries(r.optima)) {
      const k = objective === "latency" ? 0 : objective === "throughput" ? 1 : 2;
      const best = Math.min(...r.points.map((x) => vec(x)[k]));
      assert.ok(
        Math.abs(best - vec(o!)[k]) <= 1e-12 * Math.abs(best),
        `seed ${seed}: ${objective} optimum missing`,
      );
    }
  }
});
