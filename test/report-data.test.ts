import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { CleaveError } from "../src/errors.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { enumerateCuts } from "../src/partition/cuts.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { buildReportInput, type ReportPlanInput } from "../src/report/report-data.js";
import { type GraphLayout, layoutReportGraph } from "../src/report/report-graph.js";
import { renderReportHtml } from "../src/report/report-html.js";
import { pipelineSteps, schedulePipeline } from "../src/report/report-schedule.js";

const CLUSTER: Cluster = {
  name: "pair",
  devices: [
    {
      name: "a",
      kind: "cpu",
      macsPerSecond: { float32: 1e9 },
      memoryBandwidth: 1e9,
      memory: 2 ** 30,
      idlePower: 1,
      activePower: 2,
    },
    {
      name: "b",
      kind: "cpu",
      macsPerSecond: { float32: 4e9 },
      memoryBandwidth: 4e9,
      memory: 2 ** 30,
      idlePower: 1,
      activePower: 6,
    },
  ],
  links: [{ devices: ["a", "b"], kind: "ethernet", bandwidth: 1e7, latency: 1e-3, energyPerBit: 1e-9 }],
  inputDevice: "a",
  outputDevice: "a",
};

/** conv -> relu -> (skip) ... -> add(relu, conv2(relu)) -> output; the skip tensor crosses a later cut. */
async function smallModel(nodeName = "stem") {
  const b = new GraphBuilder("small", { seed: 1 });
  const x = b.input("x", "float32", [1, 4, 8, 8]);
  const stem = b.node("Relu", [
    b.node("Conv", [x, b.weight("w0", [4, 4, 3, 3])], { pads: [1, 1, 1, 1] }, nodeName),
  ]);
  const c1 = b.node("Relu", [b.node("Conv", [stem, b.weight("w1", [4, 4, 1, 1])], {}, "c1")]);
  const c2 = b.node("Conv", [c1, b.weight("w2", [4, 4, 1, 1])], {}, "c2");
  b.output(b.node("Add", [c2, stem], {}, "add"));
  const model = await analyzeModel(b.toModel(), { source: "small" });
  return { model, order: choosePartitionOrder(model) };
}

function planOf(n: number, cut: number): ReportPlanInput {
  return {
    stages: [
      { device: "a", start: 0, end: cut, latency: 0.002, memory: 1e6, energy: 0.004 },
      { device: "b", start: cut, end: n, latency: 0.001, memory: 2e6, energy: 0.006 },
    ],
    links: [
      { from: "a", to: "b", fromStage: 0, toStage: 1, bytes: 512, time: 0.0015, energy: 1e-6 },
      { from: "b", to: "a", fromStage: 1, toStage: 2, bytes: 256, time: 0.0012, energy: 1e-6 },
    ],
    totals: { latency: 0.0057, throughput: 500, energy: 0.01 },
    baselines: [
      {
        name: "only a",
        description: "all on a",
        singleDevice: "a",
        latency: 0.004,
        throughput: 250,
        energy: 0.008,
        feasible: true,
      },
    ],
  };
}

test("schedulePipeline: flow shop of back-to-back requests, period set by the slowest step", () => {
  const steps = pipelineSteps(
    [
      { device: "a", time: 2 },
      { device: "b", time: 5 },
    ],
    [{ fromStage: 0, toStage: 1, from: "a", to: "b", time: 1 }],
  );
  assert.deepEqual(
    steps.map((s) => [s.kind, s.lane, s.stage, s.time]),
    [
      ["compute", "S1 · a", 0, 2],
      ["transfer", "a → b", 0, 1],
      ["compute", "S2 · b", 1, 5],
    ],
  );
  const bars = schedulePipeline(steps, 3).map((b) => [b.request, b.step, b.start, b.end]);
  assert.deepEqual(bars, [
    [0, 0, 0, 2],
    [0, 1, 2, 3],
    [0, 2, 3, 8],
    [1, 0, 2, 4],
    [1, 1, 4, 5],
    [1, 2, 8, 13],
    [2, 0, 4, 6],
    [2, 1, 6, 7],
    [2, 2, 13, 18],
  ]);
});

test("pipelineSteps: input transfer first, each stage followed by its sends in receiver order", () => {
  const steps = pipelineSteps(
    [
      { device: "a", time: 1 },
      { device: "b", time: 1 },
      { device: "c", time: 1 },
    ],
    [
      { fromStage: 2, toStage: 3, from: "c", to: "a", time: 1 },
      { fromStage: 0, toStage: 2, from: "a", to: "c", time: 1 },
      { fromStage: 0, toStage: 1, from: "a", to: "b", time: 1 },
      { fromStage: -1, toStage: 0, from: "x", to: "a", time: 1 },
    ],
  );
  assert.deepEqual(
    steps.map((s) => s.lane),
    ["x → a", "S1 · a", "a → b", "a → c", "S2 · b", "S3 · c", "c → a"],
  );
});

test("buildReportInput: edges, sends and boundary bytes follow the plan's stages", async () => {
  const { model, order } = await smallModel();
  const n = order.nodes.length;
  const cut = 2; // after stem's Conv and Relu: the skip tensor and the main path cross
  const input = buildReportInput({
    model,
    order,
    cluster: CLUSTER,
    costModel: costModelFor(model, CLUSTER),
    plan: planOf(n, cut),
  });
  assert.equal(input.nodes.length, n);
  input.nodes.forEach((node, p) => {
    assert.equal(node.position, p);
    assert.equal(node.stage, p < cut ? 0 : 1);
    assert.equal(node.latency.length, 2);
    assert.ok(node.latency.every((l) => l >= 0));
  });
  for (const e of input.edges) assert.equal(e.cut, input.nodes[e.from].stage !== input.nodes[e.to].stage);
  const cuts = enumerateCuts(model, order);
  assert.deepEqual(
    input.boundaryBytes.slice(1),
    cuts.map((c) => c.bytes),
  );
  // Stage 0 sends the tensors crossing the cut; stage 1 returns the graph output.
  assert.deepEqual(input.stages[0].sends.map((s) => s.name).sort(), cuts[cut - 1].tensors);
  assert.deepEqual(
    input.stages[1].sends.map((s) => s.name),
    model.graph.outputs.map((o) => o.name),
  );
  assert.equal(input.stages[1].macs + input.stages[0].macs, model.totals.macs);
  assert.deepEqual(
    input.inputs.map((t) => [t.name, t.shape, t.nodes]),
    [["x", [1, 4, 8, 8], [0]]],
  );
  // Four requests through input? no input link here: S1, a→b, S2, b→a.
  assert.equal(input.timeline.predicted.steps.length, 4);
  assert.equal(input.timeline.predicted.bars.length, 16);
  assert.equal(input.timeline.measured, undefined);
});

test("buildReportInput: measured timeline and bench figures from the bench's per-stage times (ms -> s)", async () => {
  const { model, order } = await smallModel();
  const n = order.nodes.length;
  const input = buildReportInput({
    model,
    order,
    cluster: CLUSTER,
    costModel: costModelFor(model, CLUSTER),
    plan: planOf(n, 2),
    bench: {
      configurations: [
        {
          name: "plan",
          throughput: 400,
          latencyMs: { p50: 6, p95: 7 },
          stages: [
            { computeMs: 2.5, transferMs: 1.6 },
            { computeMs: 1.2, transferMs: 1.3 },
          ],
        },
      ],
    },
  });
  assert.deepEqual(input.bench?.configurations[0].latency, { p50: 0.006, p95: 0.007 });
  assert.deepEqual(
    input.timeline.measured?.steps.map((s) => s.time),
    [0.0025, 0.0016, 0.0012, 0.0013],
  );
  assert.throws(
    () =>
      buildReportInput({
        model,
        order,
        cluster: CLUSTER,
        costModel: costModelFor(model, CLUSTER),
        plan: planOf(n, 2),
        bench: {
          configurations: [
            { name: "plan", throughput: 1, latencyMs: { p50: 1 }, stages: [{ computeMs: 1 }] },
          ],
        },
      }),
    /bench: configuration 'plan' has 1 stages but the plan has 2/,
  );
});

test("buildReportInput: without per-link times, the measured communication of a request alone is spread over the links", async () => {
  const { model, order } = await smallModel();
  const input = buildReportInput({
    model,
    order,
    cluster: CLUSTER,
    costModel: costModelFor(model, CLUSTER),
    plan: planOf(order.nodes.length, 2),
    bench: {
      configurations: [
        {
          name: "plan",
          throughput: 400,
          latencyMs: { p50: 9 },
          aloneLatencyMs: { p50: 6 },
          communicationMs: 2.7,
          stages: [{ computeMs: 2.5 }, { computeMs: 1.2 }],
        },
      ],
      speedup: 1.25,
      findings: ["x"],
    },
  });
  // Predicted links take 1.5 and 1.2 ms: 2.7 ms measured splits 1.5 / 1.2.
  const transfers = input.timeline.measured?.steps.filter((s) => s.kind === "transfer").map((s) => s.time);
  assert.equal(transfers?.length, 2);
  assert.ok(
    Math.abs(transfers![0] - 0.0015) < 1e-12 && Math.abs(transfers![1] - 0.0012) < 1e-12,
    `${transfers}`,
  );
  assert.deepEqual(input.bench?.configurations[0].aloneLatency, { p50: 0.006 });
  assert.equal(input.bench?.speedup, 1.25);
  assert.deepEqual(input.bench?.findings, ["x"]);
});

test("buildReportInput: a plan that does not fit the model or cluster is refused with the stage named", async () => {
  const { model, order } = await smallModel();
  const n = order.nodes.length;
  const build = (plan: ReportPlanInput) =>
    buildReportInput({ model, order, cluster: CLUSTER, costModel: costModelFor(model, CLUSTER), plan });
  const cases: Array<[string, (p: ReportPlanInput) => void, RegExp]> = [
    ["gap", (p) => (p.stages[1].start = 3), /stage 1 covers positions 3\.\./],
    [
      "too long",
      (p) => (p.stages[1].end = n + 4),
      /stage 1 covers positions 2\.\.\d+ but must start at 2 and end by/,
    ],
    [
      "short",
      (p) => (p.stages[1].end = n - 1),
      /stages end at position \d+ but the model has \d+ compute nodes/,
    ],
    [
      "device",
      (p) => (p.stages[0].device = "gpu9"),
      /stage 0 runs on unknown device 'gpu9' \(devices: a, b\)/,
    ],
  ];
  for (const [name, mutate, message] of cases) {
    const plan = planOf(n, 2);
    mutate(plan);
    assert.throws(
      () => build(plan),
      (err: unknown) => err instanceof CleaveError && message.test(err.message),
      name,
    );
  }
});

test("renderReportHtml: one self-contained page; data that looks like markup cannot break out", async () => {
  const evil = "</script><script>alert(1)</script>";
  const { model, order } = await smallModel(evil);
  const input = buildReportInput({
    model,
    order,
    cluster: CLUSTER,
    costModel: costModelFor(model, CLUSTER),
    plan: planOf(order.nodes.length, 2),
    name: `<b>${evil}</b>`,
  });
  assert.ok(input.nodes.some((x) => x.name === evil));
  const html = renderReportHtml(input);
  // 3 libraries + 4 page scripts + the data and graph blocks, and nothing loaded from elsewhere.
  assert.equal(html.match(/<script\b/g)?.length, 9);
  assert.equal(html.match(/<\/script>/g)?.length, 9);
  const external = /<script[^>]*\ssrc=|<link\b|<img\b|sourceMappingURL=|@import/.exec(html);
  assert.equal(external, null, `nothing is loaded from elsewhere: ${external?.[0]}`);
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m);
  assert.deepEqual(JSON.parse(m[1]), JSON.parse(JSON.stringify(input)));
  assert.ok(html.includes("<title>&lt;b&gt;&lt;/script&gt;"), "the title is escaped");
  const g = /<script type="application\/json" id="report-graph">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(g);
  assert.equal((JSON.parse(g[1]) as GraphLayout).nodes.length, input.nodes.length + 2);
});

test("layoutReportGraph: top to bottom, every edge routed downwards, cut edges as in the plan", async () => {
  const { model, order } = await smallModel();
  const n = order.nodes.length;
  const input = buildReportInput({
    model,
    order,
    cluster: CLUSTER,
    costModel: costModelFor(model, CLUSTER),
    plan: planOf(n, 2),
  });
  const g = layoutReportGraph(input);
  assert.deepEqual(
    g.nodes.map((x) => x.id),
    [...input.nodes.map((x) => `n${x.position}`), "in0", "out0"],
  );
  const at = new Map(g.nodes.map((x) => [x.id, x]));
  for (const e of g.edges) {
    const s = at.get(e.source)!;
    const t = at.get(e.target)!;
    assert.ok(s.y < t.y, `${e.source} above ${e.target}`);
    assert.equal(e.cpw.length, e.cpd.length);
  }
  // Inside the model: cut exactly where the plan says; the input is read on its device (no input link),
  // the output is sent back (the plan has a link to the output device).
  const inner = g.edges.filter(
    (e) => e.id.startsWith("e") && !e.id.startsWith("ein") && !e.id.startsWith("eout"),
  );
  assert.deepEqual(
    inner.map((e) => e.cut),
    input.edges.map((e) => e.cut),
  );
  assert.equal(g.edges.find((e) => e.id === "ein0_0")?.cut, false);
  assert.equal(g.edges.find((e) => e.id === "eout0")?.cut, true);
});
