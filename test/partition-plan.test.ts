import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { CliIO } from "../src/cli/command.js";
import { main } from "../src/cli/main.js";
import { parseCluster } from "../src/cluster/load.js";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { CleaveError } from "../src/errors.js";
import { assignByBoundaries } from "../src/partition/assign.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import type { PlanConstraints } from "../src/partition/constraints.js";
import { type Plan, planToAssignment, readPlan, writePlan } from "../src/partition/plan.js";
import { makePlan } from "../src/partition/planner.js";
import { buildZooModel } from "../src/zoo/index.js";

const dev = (name: string, macs: string, memory: string, power: string, extra: object = {}) => ({
  name,
  kind: "cpu",
  throughput: macs,
  memoryBandwidth: "10GB/s",
  memory,
  idlePower: "1W",
  activePower: power,
  ...extra,
});
const SPEC = {
  name: "plan-test",
  inputDevice: "cam",
  outputDevice: "hub",
  devices: [
    dev("cam", "5 GMAC/s", "200MiB", "3W"),
    dev("hub", "80 GMAC/s", "4GiB", "30W"),
    dev("pi", "10 GMAC/s", "1GiB", "6W"),
    dev("phone", "40 GMAC/s", "2GiB", "4W", {
      coreClusters: [
        { name: "big", cores: 4, throughput: "30 GMAC/s" },
        { name: "little", cores: 4, throughput: "20 GMAC/s" },
      ],
    }),
  ],
  links: [
    {
      devices: ["cam", "hub"],
      kind: "ethernet",
      bandwidth: "100Mbit/s",
      latency: "0.5ms",
      energyPerBit: "10nJ/bit",
    },
    {
      devices: ["cam", "pi", "phone", "hub"],
      kind: "wifi",
      bandwidth: "50Mbit/s",
      latency: "2ms",
      energyPerBit: "50nJ/bit",
    },
    {
      devices: ["pi", "phone"],
      kind: "ethernet",
      bandwidth: "1Gbit/s",
      latency: "0.2ms",
      energyPerBit: "5nJ/bit",
    },
  ],
};

let model: AnalyzedModel;
let cluster: Cluster;
let dir: string;
before(async () => {
  model = await analyzeModel(buildZooModel("resnet18"), { source: "zoo:resnet18" });
  cluster = parseCluster(SPEC, "plan-test.json");
  dir = mkdtempSync(join(tmpdir(), "cleave-plan-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function plan(
  objective: "latency" | "throughput" | "energy",
  constraints: PlanConstraints = {},
  pareto = false,
) {
  return makePlan({
    model,
    modelPath: "zoo:resnet18",
    cluster,
    cost: costModelFor(model, cluster),
    objective,
    constraints,
    pareto,
  });
}

/** Every constraint a plan must respect, checked on the plan file itself. */
function assertRespects(p: Plan, c: PlanConstraints) {
  const devices = new Map(cluster.devices.map((d) => [d.name, d]));
  const used = p.stages.map((s) => s.device);
  assert.equal(new Set(used).size, used.length, "one stage per device");
  for (const s of p.stages) assert.ok(s.memory <= devices.get(s.device)!.memory, `stage ${s.index} memory`);
  if (c.maxLatency !== undefined) assert.ok(p.totals.latency <= c.maxLatency, "latency");
  if (c.minThroughput !== undefined) assert.ok(p.totals.throughput >= c.minThroughput, "throughput");
  if (c.maxEnergy !== undefined) assert.ok(p.totals.energy <= c.maxEnergy, "energy");
  if (c.maxLinkBytes !== undefined) {
    const perLink = new Map<string, number>();
    for (const l of p.links) perLink.set(l.link, (perLink.get(l.link) ?? 0) + l.bytes);
    for (const [l, b] of perLink) assert.ok(b <= c.maxLinkBytes, `link ${l} carries ${b}`);
  }
  if (c.devices) for (const d of used) assert.ok(c.devices.includes(d), `${d} not allowed`);
  if (c.deviceOrder) {
    const rank = used.map((d) => c.deviceOrder!.indexOf(d));
    assert.ok(
      rank.every((r, i) => r >= 0 && (i === 0 || r > rank[i - 1])),
      `order ${used}`,
    );
  }
  const nodes = p.stages.flatMap((s) => s.nodes);
  assert.equal(new Set(nodes).size, model.graph.nodes.filter((n) => !n.isConstant).length, "every node once");
}

test("plans respect every constraint, round-trip through plan.json and map back to an assignment", () => {
  const cases: Array<["latency" | "throughput" | "energy", PlanConstraints]> = [
    ["latency", {}],
    ["throughput", {}],
    ["energy", {}],
    ["throughput", { maxLatency: 0.6 }],
    ["latency", { minThroughput: 4, maxEnergy: 3 }],
    ["energy", { maxLatency: 1.2, maxLinkBytes: 2e6 }],
    ["throughput", { devices: ["cam", "pi", "phone"] }],
    ["latency", { deviceOrder: ["cam", "pi", "phone", "hub"] }],
  ];
  for (const [objective, c] of cases) {
    const { plan: p, evaluation, replicated } = plan(objective, c);
    const ev = replicated?.evaluation ?? evaluation!;
    assert.ok(ev.feasible, `${objective} ${JSON.stringify(c)}: ${ev.violations.map((v) => v.message)}`);
    assert.equal(p.planner.exact, true);
    assertRespects(p, c);
    const file = join(dir, `${objective}.json`);
    writePlan(file, p);
    const back = readPlan(file);
    assert.deepEqual(back, JSON.parse(JSON.stringify(p)));
    const a = planToAssignment(model, back);
    const order = p.stages.slice(1).map((s) => s.start);
    const byCuts = assignByBoundaries(model, { ...makeOrder(), strategy: p.order }, order);
    assert.deepEqual([...a.stageOf], [...byCuts.stageOf], `${objective}: assignment`);
    // The plan is optimal over contiguous splits (and local splits only improve it): no baseline beats it.
    for (const b of p.baselines) {
      if (b.feasible && b.ratio !== null)
        assert.ok(b.ratio >= 1 - 1e-9, `${objective}: ${b.name} beats the plan (${b.ratio})`);
    }
  }
});

function makeOrder() {
  return makePlan({
    model,
    modelPath: "zoo:resnet18",
    cluster,
    cost: costModelFor(model, cluster),
    objective: "latency",
  }).order;
}

test("planToAssignment refuses a plan made for another model, and readPlan a damaged file", async () => {
  const { plan: p } = plan("latency");
  const other = await analyzeModel(buildZooModel("alexnet"), { source: "zoo:alexnet" });
  assert.throws(() => planToAssignment(other, p), /plan\.json was made for another model/);
  const file = join(dir, "bad.json");
  writeFileSync(file, JSON.stringify({ ...p, stages: [{ ...p.stages[0], end: "x" }] }));
  assert.throws(() => readPlan(file), /bad\.json: not a cleave plan \(stages\[0\]\.end/);
});

test("hierarchical: a stage on a device with core clusters becomes a local pipeline when that raises throughput", () => {
  const { plan: p } = plan("throughput", { devices: ["phone"] });
  assert.equal(p.stages.length, 1);
  const s = p.stages[0];
  assert.ok(s.local && s.local.length === 2, "split over big and little");
  assert.deepEqual(new Set(s.local.map((l) => l.coreCluster)), new Set(["big", "little"]));
  assert.ok(s.period! < s.latency, "pipelined: a shorter period than one pass");
  assert.equal(s.local[0].start, s.start);
  assert.equal(s.local.at(-1)!.end, s.end);
  // Flat, the phone's stage would be the bottleneck; local, the plan beats the single device.
  const single = p.baselines.find((b) => b.name === "single")!;
  assert.ok(
    p.totals.throughput > single.totals.throughput,
    `${p.totals.throughput} vs ${single.totals.throughput}`,
  );
  // For latency a cluster is slower than the whole device: no local split.
  const lat = plan("latency", { devices: ["phone"] }).plan;
  assert.equal(lat.stages[0].local, undefined);
});

test("Pareto front in the plan: no dominated point, the plan's own optimum on it", () => {
  const { plan: p } = plan("throughput", {}, true);
  assert.ok(p.pareto && p.pareto.length >= 1);
  const v = (x: { latency: number; throughput: number; energy: number }) => [
    x.latency,
    -x.throughput,
    x.energy,
  ];
  for (const a of p.pareto) {
    for (const b of p.pareto) {
      const va = v(a);
      const vb = v(b);
      const dom = va.every((x, i) => x <= vb[i]) && va.some((x, i) => x < vb[i]);
      assert.ok(!dom, "dominated point on the front");
    }
  }
  assert.ok(p.pareto.some((x) => x.label?.includes("most throughput")));
});

function io(): CliIO & { text: () => string; errors: () => string } {
  let out = "";
  let err = "";
  return {
    out: (t) => {
      out += `${t}\n`;
    },
    err: (t) => {
      err += `${t}\n`;
    },
    isTTY: false,
    text: () => out,
    errors: () => err,
  };
}

test("cleave plan: tables, -o plan.json, and a clear non-zero exit when nothing fits", async () => {
  const clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify({ ...SPEC, constraints: { maxEnergy: "10J" } }));
  const out = join(dir, "cli-plan.json");
  const ok = io();
  assert.equal(
    await main(
      ["plan", "zoo:resnet18", "--cluster", clusterFile, "--objective", "throughput", "-o", out],
      ok,
    ),
    0,
  );
  assert.match(ok.text(), /stage\s+device\s+nodes/);
  assert.match(ok.text(), /baseline\s+devices/);
  assert.match(ok.text(), /neurosurgeon/);
  assert.equal(readPlan(out).constraints.maxEnergy, 10, "constraints from the cluster file");
  assert.equal(JSON.parse(readFileSync(out, "utf8")).objective, "throughput");

  const slow = io();
  assert.equal(await main(["plan", "zoo:resnet18", "--cluster", clusterFile, "--max-latency", "1"], slow), 1);
  assert.match(
    slow.errors(),
    /error: no plan of zoo:resnet18 on plan-test fits: --max-latency 1\.00 ms: the fastest plan takes .* over\); allow at least/,
  );

  const tiny = join(dir, "tiny.json");
  const small = SPEC.devices.map((d) => ({ ...d, memory: "80MiB" }));
  writeFileSync(tiny, JSON.stringify({ ...SPEC, devices: small }));
  const mem = io();
  assert.equal(await main(["plan", "zoo:resnet18", "--cluster", tiny], mem), 1);
  assert.match(
    mem.errors(),
    /needs .* \(weights \+ activations \+ runtime\), the largest device \w+ has 80\.0 MiB: use at least \d+ devices \(4 may run stages\)/,
  );

  const bad = io();
  assert.equal(
    await main(["plan", "zoo:resnet18", "--cluster", clusterFile, "--objective", "speed"], bad),
    2,
  );
  assert.match(bad.errors(), /--objective: expected one of latency, throughput, energy/);
});

test("an infeasible plan raises INFEASIBLE from the library, never an empty plan", () => {
  assert.throws(
    () => plan("latency", { minThroughput: 1e6 }),
    (e: unknown) =>
      e instanceof CleaveError && e.code === "INFEASIBLE" && /--min-fps 1000000: at most/.test(e.message),
  );
});
