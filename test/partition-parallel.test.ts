import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { equalPair } from "./helpers/pair.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { evaluate } from "../src/partition/evaluate.js";
import { evaluateDag } from "../src/partition/evaluate-dag.js";
import { resolveConstraints } from "../src/partition/constraints.js";
import { parallelPlanFor } from "../src/partition/plan-parallel.js";
import { makePlan } from "../src/partition/planner.js";
import { buildZooModel } from "../src/zoo/index.js";
import { assertReproduces } from "./helpers/plan-reproduces.js";

/** Name of the Concat that joins the tiles of the stack ending at `to`. */
const tiled0Join = (model: Awaited<ReturnType<typeof analyzeModel>>, to: string) =>
  `${model.graph.values.get(to)!.producer!.name}.join`;
const CLI = join(import.meta.dirname, "..", "src", "cli", "main.js");

/** Two equal analytic devices on a link of the given bandwidth (no profile: the roofline prices them). */
const pair = (bandwidth: string) => equalPair(bandwidth);

async function planOf(name: string, bandwidth: string, tiles?: number, minGain?: number) {
  const model = await analyzeModel(buildZooModel(name), { source: name });
  const cluster = pair(bandwidth);
  const cost = costModelFor(model, cluster);
  const out = makePlan({ model, modelPath: `zoo:${name}`, cluster, cost, objective: "latency" });
  const par = await parallelPlanFor(out.plan, model, out.order, out.problem, cluster, cost, {
    ...(tiles ? { tiles } : {}),
    ...(minGain !== undefined ? { minGain } : {}),
  });
  return { model, out, par };
}

test("the stage-graph evaluator equals the relay model on a chain of stages, and overlaps independent ones", async () => {
  const { out } = await planOf("resnet18", "1Gbit/s");
  const p = out.problem;
  const rc = resolveConstraints(p, {});
  const n = p.n;
  const chain = [
    { device: 0, start: 0, end: Math.floor(n / 2) },
    { device: 1, start: Math.floor(n / 2), end: n },
  ];
  const cut = out.order.nodes.findIndex(
    (_, q) => q > 0 && q < n && p.cutBytes[q] > 0 && q === Math.floor(n / 2),
  );
  assert.ok(cut > 0);
  const relay = evaluate(p, { stages: chain }, rc);
  const dag = evaluateDag(p, chain);
  // A chain where every tensor crosses one boundary: both models agree.
  if (p.tensors.every((t) => t.def < 0 || t.lastUse <= Math.floor(n / 2) || t.def >= Math.floor(n / 2) - 1))
    assert.ok(
      Math.abs(dag.latency - relay.latency) <= 1e-9 * relay.latency,
      `${dag.latency} vs ${relay.latency}`,
    );
  assert.ok(dag.stages[1].start >= dag.stages[0].finish, "the second stage waits for the first");
});

for (const name of ["unet", "resnet18"]) {
  test(`zoo ${name}: a forced 2-tile plan runs its tiles side by side and its stages reproduce the model`, async () => {
    const { model, par } = await planOf(name, "1Gbit/s", 2);
    assert.ok(par, "a tiled plan");
    const plan = par.plan;
    assert.ok((plan.tiles?.stacks.length ?? 0) >= 1);
    for (const st of plan.tiles!.stacks) assert.equal(st.tiles, 2);
    // The two tiles run on two devices at the same time in the predicted timeline.
    const tl = plan.tiles!.timeline;
    const tileStages = plan.stages.filter((s) => s.nodes.some((x) => x.endsWith(".tile1")));
    assert.ok(tileStages.length >= 1);
    const k1 = tileStages[0].index;
    const k0 = plan.stages.find((s) => s.nodes.some((x) => x.endsWith(".tile0")) && s.index !== k1)!.index;
    assert.notEqual(plan.stages[k0].device, plan.stages[k1].device);
    assert.ok(tl[k0].start < tl[k1].finish && tl[k1].start < tl[k0].finish, "tiles overlap in time");
    assert.ok(plan.tiles!.haloMacs > 0);
    // Rebuilt from the plan file alone, the stages run in sequence reproduce the original model.
    await assertReproduces(model, plan, `${name} tiled plan`);
  });
}

test("ResNet-50 on an equal pair: chained stacks hand tiles on (halo rows only cross), and the plan file rebuilds a model that reproduces it", async () => {
  const { model, par } = await planOf("resnet50", "1Gbit/s");
  assert.ok(par, "a tiled plan");
  const plan = JSON.parse(JSON.stringify(par.plan));
  const chained = plan.tiles.stacks.filter((s: { fromTiles?: boolean }) => s.fromTiles);
  assert.ok(chained.length >= 1, JSON.stringify(plan.tiles.stacks));
  // Between a stack and the one reading its tiles, each device sends only the halo rows the other needs,
  // less than the half of the tensor its tile made (which a join would gather first).
  for (const st of chained) {
    const joined = model.types.get(st.from)!;
    const whole = joined.shape.reduce((a: number, b: number) => a * b, 1) * 4;
    const halo = plan.links.filter((l: { bytes: number; fromStage: number; toStage: number }) =>
      plan.stages[l.toStage]?.inputs.some((i: string) => i.startsWith(`${st.from}.tile`)),
    );
    assert.ok(halo.length >= 1, `halo transfers into the stack from ${st.from}`);
    for (const l of halo) assert.ok(l.bytes < whole / 2, `${l.bytes} B of a ${whole} B tensor`);
    // No stage joins that tensor.
    assert.ok(!plan.stages.some((s: { nodes: string[] }) => s.nodes.includes(tiled0Join(model, st.from))));
  }
  await assertReproduces(model, plan, "resnet50 chained tiles");
});

test("UNet on an equal pair: tiles pay on 1 Gbit/s and the plan predicts below the best single device", async () => {
  const { out, par } = await planOf("unet", "1Gbit/s");
  assert.ok(par, "tiling chosen");
  const single = out.plan.baselines.find((b) => b.name === "single")!;
  assert.ok(par.plan.totals.latency < single.totals.latency!);
});

test("tiles are kept only for a predicted gain of at least minGain over the plan without them", async () => {
  const { out, par } = await planOf("unet", "1Gbit/s", undefined, 0);
  assert.ok(par, "tiling chosen without a least gain");
  const gain = 1 - par.plan.totals.latency / out.plan.totals.latency;
  assert.ok(gain > 0.05, `UNet's tiles gain ${gain}`);
  assert.ok((await planOf("unet", "1Gbit/s", undefined, gain * 0.99)).par, "just under the gain: kept");
  assert.equal(
    (await planOf("unet", "1Gbit/s", undefined, gain * 1.01)).par,
    undefined,
    "just over: dropped",
  );
});

test("on a slow link (1 Mbit/s) the planner decides tiles do not pay", async () => {
  const { par } = await planOf("unet", "1Mbit/s");
  assert.equal(par, undefined);
});

/**
 * The equal pair without pinned cpus (priced by the roofline, nothing to profile) in a folder of its own, and
 * the CLI run with that folder as its cache.
 */
function rooflinePair() {
  const dir = mkdtempSync(join(tmpdir(), "cleave-pair-"));
  const cluster = join(dir, "pair.yaml");
  writeFileSync(
    cluster,
    readFileSync(join(import.meta.dirname, "..", "..", "examples", "clusters", "equal-pair.yaml"), "utf8")
      .split("\n")
      .filter((l) => !/^\s*(cpus|cpuShare|threads):/.test(l))
      .join("\n"),
  );
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], {
      encoding: "utf8",
      env: { ...process.env, CLEAVE_CACHE_DIR: dir },
    });
  return { dir, cluster, cli };
}

test("cleave plan --tiles: a count above the rows, and a model with no spatial stack, fail in one line", () => {
  const { dir, cluster, cli: run } = rooflinePair();
  try {
    const big = run(["plan", "zoo:unet", "--cluster", cluster, "--tiles", "100000"]);
    assert.notEqual(big.status, 0);
    assert.match(
      big.stderr.trim(),
      /^error: --tiles 100000: no stack of zoo:unet can be split into 100000 row tiles \(the tallest tile stack ends at layer '[^']+' with \d+ rows, fewer than 100000\)$/,
    );
    assert.equal(big.stderr.trim().split("\n").length, 1, big.stderr);
    const bad = run(["plan", "zoo:unet", "--cluster", cluster, "--tiles", "1"]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--tiles: expected a whole number of tiles >= 2, got '1'/);
    const vit = run(["plan", "zoo:bert_mini", "--cluster", cluster, "--tiles", "2"]);
    assert.notEqual(vit.status, 0);
    assert.match(vit.stderr, /no stack of zoo:bert_mini can be split/);
    assert.match(vit.stderr, /layer '[^']+' \(\w+\) mixes positions/);
    assert.equal(vit.stderr.trim().split("\n").length, 1, vit.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cleave plan --min-gain: branches only when they gain that much; bad values fail in one line", () => {
  const { dir, cluster, cli } = rooflinePair();
  const run = (args: string[]) => cli(["plan", "zoo:googlenet", "--cluster", cluster, "--json", ...args]);
  try {
    const plain = run(["--no-parallel"]);
    assert.equal(plain.status, 0, plain.stderr);
    const base = JSON.parse(plain.stdout).totals.latency;
    const any = run(["--no-tiles", "--min-gain", "0"]);
    assert.equal(any.status, 0, any.stderr);
    const branched = JSON.parse(any.stdout);
    assert.ok(branched.tiles?.branchRegions >= 1, "branches placed with any gain allowed");
    const gain = 1 - branched.totals.latency / base;
    assert.ok(gain > 0 && gain < 0.9, `gain ${gain}`);
    // Just above the predicted gain: declined, the plan without branches is kept; just below: taken.
    const above = JSON.parse(
      run(["--no-tiles", "--min-gain", `${((gain + 0.01) * 100).toFixed(2)}%`]).stdout,
    );
    assert.equal(above.tiles, undefined);
    assert.equal(above.totals.latency, base);
    // The plan says why: what was predicted, against what, under which least gain.
    const why =
      /^branches side by side predicted ([\d.]+) ms, ([\d.]+)% below ([\d.]+) ms: under the ([\d.]+)% least gain \(--min-gain\)$/.exec(
        above.planner.parallel,
      );
    assert.ok(why, `planner.parallel: ${above.planner.parallel}`);
    assert.ok(Math.abs(Number(why[1]) - branched.totals.latency * 1000) < 0.06, why[1]);
    assert.ok(Math.abs(Number(why[3]) - base * 1000) < 0.06, why[3]);
    assert.ok(Math.abs(Number(why[2]) - gain * 100) < 0.06, why[2]);
    assert.equal(Number(why[4]), Number(((gain + 0.01) * 100).toFixed(2)));
    const text = cli(["plan", "zoo:googlenet", "--cluster", cluster, "--no-tiles", "--min-gain", "99%"]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(
      text.stdout,
      /^one stage at a time: branches side by side predicted .* under the 99% least gain/m,
    );
    assert.equal(JSON.parse(any.stdout).planner.parallel, undefined);
    const below = JSON.parse(run(["--no-tiles", "--min-gain", String(Math.max(0, gain - 0.01))]).stdout);
    assert.ok(below.tiles?.branchRegions >= 1);
    for (const [args, want] of [
      [
        ["--min-gain", "150%"],
        /^error: --min-gain: expected a gain from 0 to under 1 \("5%" or 0\.05\), got '150%'$/,
      ],
      [["--min-gain", "fast"], /^error: --min-gain: expected a gain from 0 to under 1 .* got 'fast'$/],
      [
        ["--min-gain", "2%", "--tiles", "2"],
        /^error: --min-gain and --tiles \(forced whatever the gain\) contradict/,
      ],
      [["--min-gain", "2%", "--no-parallel"], /^error: --min-gain and --no-parallel contradict/],
    ] as const) {
      const r = run([...args]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr.trim(), want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
