import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { equalPair } from "./helpers/pair.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { branchRegions } from "../src/partition/branch-candidates.js";
import { parallelPlanFor } from "../src/partition/plan-parallel.js";
import { makePlan } from "../src/partition/planner.js";
import { buildZooModel } from "../src/zoo/index.js";
import { cleave } from "./helpers/cli.js";
import { assertReproduces } from "./helpers/plan-reproduces.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-branches-"));
after(() => rmSync(dir, { recursive: true, force: true }));
process.env.CLEAVE_CACHE_DIR = join(dir, "cache");

/** Two equal analytic devices on a link of the given bandwidth (priced by the roofline). */
const pair = (bandwidth: string) => equalPair(bandwidth);

/** A two-input model: two convolution towers (one with a Flatten, so it cannot be tiled) added, then a head. */
function twoTower() {
  const b = new GraphBuilder("two-tower", { seed: 7 });
  const tower = (x: string, name: string) => {
    let h = x;
    for (let i = 0; i < 5; i++)
      h = b.node("Relu", [
        b.node("Conv", [h, b.weight(`${name}.w${i}`, [32, i === 0 ? 8 : 32, 3, 3])], { pads: [1, 1, 1, 1] }),
      ]);
    return h;
  };
  const ta = tower(b.input("a", "float32", [1, 8, 48, 48]), "ta");
  const tb = tower(b.input("b", "float32", [1, 8, 48, 48]), "tb");
  const sum = b.node("Add", [ta, tb]);
  const pooled = b.node("Flatten", [b.node("GlobalAveragePool", [sum])]);
  b.output(b.node("Gemm", [pooled, b.weight("fc.w", [10, 32]), b.weight("fc.b", [10])], { transB: 1 }));
  return b.toModel();
}

async function branchPlan(proto: ReturnType<typeof twoTower>, source: string) {
  const model = await analyzeModel(proto, { source });
  const cluster = pair("10Gbit/s");
  const cost = costModelFor(model, cluster);
  const out = makePlan({ model, modelPath: source, cluster, cost, objective: "latency" });
  const par = await parallelPlanFor(out.plan, model, out.order, out.problem, cluster, cost, {
    spatial: false,
  });
  return { model, out, par };
}

/** Devices of the stages holding nodes whose names match `re`. */
function devicesOf(plan: { stages: { device: string; nodes: string[] }[] }, re: RegExp): string[] {
  return [...new Set(plan.stages.filter((s) => s.nodes.some((n) => re.test(n))).map((s) => s.device))].sort();
}

test("fork/join regions: GoogLeNet's nine Inception blocks, the two towers of a two-input model", async () => {
  const g = await analyzeModel(buildZooModel("googlenet"), { source: "googlenet" });
  const cluster = pair("1Gbit/s");
  const out = makePlan({
    model: g,
    modelPath: "zoo:googlenet",
    cluster,
    cost: costModelFor(g, cluster),
    objective: "latency",
  });
  const regions = branchRegions(g, out.order, out.problem);
  assert.equal(regions.length, 9);
  for (const r of regions) {
    assert.equal(r.branches.length, 4, "four branches per Inception block");
    assert.match(g.graph.nodes[out.order.nodes[r.join!]].name, /concat$/);
  }
  const t = await analyzeModel(twoTower(), { source: "two-tower" });
  const tc = pair("1Gbit/s");
  const to = makePlan({
    model: t,
    modelPath: "t",
    cluster: tc,
    cost: costModelFor(t, tc),
    objective: "latency",
  });
  const tr = branchRegions(t, to.order, to.problem);
  assert.equal(tr.length, 1);
  assert.equal(tr[0].start, 0, "the towers fork at the graph inputs");
  assert.equal(tr[0].branches.length, 2);
  assert.equal(t.graph.nodes[to.order.nodes[tr[0].join!]].op, "Add");
});

test("two-tower model: the towers run on both devices at once, and the plan's stages reproduce the model", async () => {
  const { model, out, par } = await branchPlan(twoTower(), "two-tower");
  assert.ok(par, "a branch-parallel plan");
  const plan = par.plan;
  assert.equal(plan.tiles?.branchRegions, 1);
  assert.equal(plan.tiles?.stacks.length, 0);
  const towerStages = plan.stages.filter((s) => s.nodes.some((n) => /^(conv|relu)/.test(n)));
  assert.deepEqual([...new Set(towerStages.map((s) => s.device))].sort(), ["a", "b"]);
  const [x, y] = towerStages.map((s) => plan.tiles!.timeline[s.index]);
  assert.ok(x.start < y.finish && y.start < x.finish, "the towers overlap in time");
  assert.ok(plan.totals.latency < out.plan.totals.latency, "cheaper than the plan without branches");
  assert.match(plan.planner.limited!, /every branch placement tried/);
  await assertReproduces(model, plan, "two-tower branch plan");
});

test("GoogLeNet on an equal pair: Inception branches on both devices, stages reproduce the model", async () => {
  const { model, par } = await branchPlan(buildZooModel("googlenet"), "zoo:googlenet");
  assert.ok(par, "a branch-parallel plan");
  assert.ok((par.plan.tiles?.branchRegions ?? 0) >= 1);
  const split = par.plan.stages.filter(
    (s) => s.nodes.some((n) => /\.branch\d/.test(n)) && s.nodes.every((n) => /\.branch\d/.test(n)),
  );
  assert.deepEqual([...new Set(split.map((s) => s.device))].sort(), ["a", "b"]);
  await assertReproduces(model, par.plan, "googlenet branch plan");
});

for (const [name, make] of [
  [
    "two-tower",
    () => {
      const path = join(dir, "two-tower.onnx");
      writeFileSync(path, encodeModel(twoTower()));
      return path;
    },
  ],
  ["googlenet", () => "zoo:googlenet"],
] as const) {
  test(`cleave plan --no-tiles, split and run ${name} on real local workers: branches on both cores, outputs match the whole model`, () => {
    const m = make();
    const planFile = join(dir, `${name}.plan.json`);
    // GoogLeNet's branches are predicted 6.8-7.8% faster than one core (profiles measured on a quiet host),
    // close to the default 5% least gain: a profile measured while other tests load the cores can fall under
    // it. The test is about running branch plans, so it asks for any gain of 1% or more.
    const gain = name === "googlenet" ? ["--min-gain", "1%"] : [];
    const p = cleave(["plan", m, "--objective", "latency", "--no-tiles", ...gain, "-o", planFile]);
    assert.equal(p.code, 0, p.stderr);
    const plan = JSON.parse(readFileSync(planFile, "utf8"));
    assert.ok(plan.tiles?.branchRegions >= 1, "branches placed on several devices");
    assert.equal(plan.tiles.stacks.length, 0, "no spatial tiles with --no-tiles");
    const re = name === "googlenet" ? /\.branch\d/ : /^(conv|relu)/;
    assert.deepEqual(devicesOf(plan, re), ["core0", "core1"]);
    const out = join(dir, `${name}.split`);
    const s = cleave(["split", m, "--plan", planFile, "-o", out]);
    assert.equal(s.code, 0, s.stderr);
    const r = cleave(["run", m, "--plan", planFile, "--requests", "3", "--in-flight", "1", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const run = JSON.parse(r.stdout);
    assert.equal(run.report.completed, 3);
    assert.ok(run.maxRelativeDiff <= 1e-5, `outputs differ by ${run.maxRelativeDiff}`);
    assert.ok(run.referenceChecked >= 1 + 3, "every request compared with the unsplit model");
    assert.ok(run.stageBusyMs.core0 > 0 && run.stageBusyMs.core1 > 0, "both devices computed");
  });
}
