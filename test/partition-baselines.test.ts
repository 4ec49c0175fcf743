import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCluster } from "../src/cluster/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { validateAssignment } from "../src/partition/assign.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { dadsCut } from "../src/partition/baseline-dads.js";
import { proportionalCuts } from "../src/partition/baseline.js";
import { runBaselines } from "../src/partition/baselines.js";
import { resolveConstraints } from "../src/partition/constraints.js";
import { evaluate, evaluateAssignment } from "../src/partition/evaluate.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { positionsToAssignment } from "../src/partition/plan.js";
import { linkOf, type PlanProblem, transferCost } from "../src/partition/problem.js";
import { randomProblem } from "../src/partition/random-problem.js";
import { buildProblem } from "../src/partition/problem.js";
import { buildZooModel } from "../src/zoo/index.js";

/** DADS's objective for a set of positions on device a (the rest on b), computed directly. */
function dadsCost(p: PlanProblem, a: number, b: number, onA: boolean[]): number {
  const lat = (d: number, q: number) => p.prefix[d][q + 1] - p.prefix[d][q];
  const send = (x: number, y: number, bytes: number) =>
    x === y || bytes <= 0
      ? 0
      : linkOf(p, x, y) < 0
        ? Number.POSITIVE_INFINITY
        : transferCost(p, linkOf(p, x, y), bytes).time;
  let cost = 0;
  for (let q = 0; q < p.n; q++) cost += onA[q] ? lat(a, q) : lat(b, q);
  for (const t of p.tensors) {
    const fromA = t.def < 0 ? p.inputDevice === a : onA[t.def];
    if (t.def < 0 && p.inputDevice !== a) continue;
    if (fromA && t.uses.some((u) => u < p.n && !onA[u])) cost += send(a, b, t.bytes);
    if (t.def >= 0 && t.uses.includes(p.n)) cost += send(onA[t.def] ? a : b, p.outputDevice, t.bytes);
  }
  return cost;
}

test("DADS min-cut is the least-cost predecessor-closed split (brute force over 150 random problems)", () => {
  let checked = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const p = randomProblem(seed, { devices: 2, linkDensity: 1, n: 3 + (seed % 8) });
    const a = p.inputDevice;
    const b = 1 - a;
    const cut = dadsCut(p, a, b);
    const onA = Array.from({ length: p.n }, (_, q) => cut.devices[cut.stageOf[q]] === a);
    // Closed under predecessors: nothing on a reads from b.
    for (const t of p.tensors) {
      if (t.def < 0) continue;
      for (const u of t.uses)
        if (u < p.n && onA[u]) assert.ok(onA[t.def], `seed ${seed}: ${t.name} flows b -> a`);
    }
    let best = Number.POSITIVE_INFINITY;
    for (let mask = 0; mask < 1 << p.n; mask++) {
      const set = Array.from({ length: p.n }, (_, q) => (mask & (1 << q)) !== 0);
      const closed = p.tensors.every(
        (t) => t.def < 0 || t.uses.every((u) => u >= p.n || !set[u] || set[t.def]),
      );
      if (closed) best = Math.min(best, dadsCost(p, a, b, set));
    }
    const got = dadsCost(p, a, b, onA);
    assert.ok(
      Math.abs(got - best) <= 1e-9 * Math.max(1, best),
      `seed ${seed}: min-cut ${got} vs best ${best}`,
    );
    checked++;
  }
  assert.equal(checked, 150);
});

test("every baseline is priced consistently or says why it is infeasible", () => {
  for (let seed = 1; seed <= 60; seed++) {
    const p = randomProblem(seed);
    const rc = resolveConstraints(p, seed % 2 ? { maxLatency: 30 } : {});
    for (const objective of ["latency", "throughput", "energy"] as const) {
      for (const b of runBaselines(p, rc, objective)) {
        if (!b.evaluation) {
          assert.equal(b.feasible, false);
          assert.ok(b.reason && b.reason.length > 0, `${b.name}: no reason`);
          continue;
        }
        const again = b.candidate ? evaluate(p, b.candidate, rc) : evaluateAssignment(p, b.assignment!, rc);
        assert.equal(again.feasible, b.feasible, `seed ${seed} ${b.name}`);
        assert.equal(again.latency, b.evaluation.latency);
        if (!b.feasible) assert.ok(b.reason, `seed ${seed} ${b.name}: infeasible without a reason`);
        if (b.candidate) {
          assert.equal(b.candidate.stages[0].start, 0);
          assert.equal(b.candidate.stages.at(-1)!.end, p.n);
        }
      }
    }
  }
});

test("proportional cuts follow the shares", () => {
  assert.deepEqual(proportionalCuts([1, 1, 1, 1, 1, 1], [1, 1, 1]), [2, 4]);
  assert.deepEqual(proportionalCuts([1, 1, 1, 1, 1, 1, 1, 1], [3, 1]), [6]);
  assert.deepEqual(proportionalCuts([10, 0, 0, 0], [1, 1, 1, 1]), [1, 2, 3], "every stage keeps a position");
});

test("DADS on a branchy zoo model yields an assignment the exporter accepts", async () => {
  const model = await analyzeModel(buildZooModel("googlenet"), { source: "googlenet" });
  const cluster = parseCluster(
    {
      name: "pair",
      inputDevice: "edge",
      outputDevice: "cloud",
      devices: [
        {
          name: "edge",
          kind: "cpu",
          throughput: "10 GMAC/s",
          memoryBandwidth: "5GB/s",
          memory: "4GiB",
          idlePower: "2W",
          activePower: "5W",
        },
        {
          name: "cloud",
          kind: "gpu",
          throughput: "2 TMAC/s",
          memoryBandwidth: "500GB/s",
          memory: "16GiB",
          idlePower: "50W",
          activePower: "250W",
        },
      ],
      links: [
        {
          devices: ["edge", "cloud"],
          kind: "wifi",
          bandwidth: "5Mbit/s",
          latency: "5ms",
          energyPerBit: "50nJ/bit",
        },
      ],
    },
    "pair",
  );
  const order = choosePartitionOrder(model);
  const p = buildProblem(model, order, cluster, costModelFor(model, cluster));
  const cut = dadsCut(p, 0, 1);
  assert.equal(cut.devices.length, 2, "a real split, not one device");
  const a = positionsToAssignment(model, order, cut.stageOf, cut.devices.length);
  validateAssignment(model, a);
  const ev = evaluateAssignment(p, cut, resolveConstraints(p, {}));
  assert.ok(Number.isFinite(ev.latency));
});
