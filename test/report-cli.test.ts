import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { stringify } from "yaml";
import { main } from "../src/cli/main.js";
import { loadCluster } from "../src/cluster/load.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { profileModel, saveProfile } from "../src/cost/profile.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { saveModel } from "../src/onnx/model-io.js";
import { noConstraints } from "../src/partition/constraints.js";
import { balancedCuts } from "../src/partition/cuts.js";
import { candidateFromCuts, evaluate } from "../src/partition/evaluate.js";
import { choosePartitionOrder } from "../src/partition/order.js";
import { buildProblem } from "../src/partition/problem.js";
import type { ReportInput } from "../src/report/report-data.js";
import { reportPlanFromEvaluation } from "../src/report/report-plan.js";
import { buildZooModel } from "../src/zoo/index.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-report-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const CLUSTER_YAML = {
  name: "pair",
  devices: [
    {
      name: "edge",
      kind: "cpu",
      throughput: "20 GMAC/s",
      memoryBandwidth: "10 GB/s",
      memory: "1 GiB",
      idlePower: "1 W",
      activePower: "4 W",
    },
    {
      name: "server",
      kind: "gpu",
      throughput: "400 GMAC/s",
      memoryBandwidth: "100 GB/s",
      memory: "8 GiB",
      idlePower: "20 W",
      activePower: "80 W",
    },
  ],
  links: [
    {
      devices: ["edge", "server"],
      kind: "wifi",
      bandwidth: "50 Mbit/s",
      latency: "3 ms",
      energyPerBit: "10nJ/bit",
    },
  ],
  inputDevice: "edge",
  outputDevice: "edge",
};

function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  return main(args, { out: (t) => out.push(t), err: (t) => err.push(t), isTTY: false }).then((code) => ({
    code,
    out: out.join("\n"),
    err: err.join("\n"),
  }));
}

/** A model file, cluster file and a plan file for them (priced by the partition evaluator), relative paths. */
async function planFiles() {
  const modelPath = join(dir, "squeezenet.onnx");
  saveModel(buildZooModel("squeezenet1_1"), modelPath);
  writeFileSync(join(dir, "cluster.yaml"), stringify(CLUSTER_YAML));
  const cluster = loadCluster(join(dir, "cluster.yaml"));
  const model = await analyzeModel(modelPath);
  const order = choosePartitionOrder(model);
  const problem = buildProblem(model, order, cluster, costModelFor(model, cluster));
  const rc = noConstraints(problem);
  const cuts = balancedCuts(model, order, 2);
  const candidate = candidateFromCuts(problem.n, cuts, [0, 1]);
  const plan = reportPlanFromEvaluation(["edge", "server"], candidate, evaluate(problem, candidate, rc));
  const single = evaluate(problem, candidateFromCuts(problem.n, [], [0]), rc);
  const file = {
    model: "squeezenet.onnx",
    cluster: "cluster.yaml",
    order: order.strategy,
    planner: "balanced",
    objective: "throughput",
    ...plan,
    baselines: [
      {
        name: "only edge",
        description: "everything on the edge device",
        singleDevice: "edge",
        totals: { latency: single.latency, throughput: single.throughput, energy: single.energy },
      },
    ],
  };
  writeFileSync(join(dir, "plan.json"), JSON.stringify(file));
  return { file, model };
}

/** The data embedded in a written report. */
function embedded(path: string): ReportInput {
  const html = readFileSync(path, "utf8");
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, "the report embeds its data");
  return JSON.parse(m[1]) as ReportInput;
}

test("cleave report: writes the page of a plan, with the bench's measurements", async () => {
  const { file } = await planFiles();
  writeFileSync(
    join(dir, "bench.json"),
    JSON.stringify({
      configurations: [
        {
          name: "plan",
          throughput: 20,
          latencyMs: { p50: 80, p95: 95 },
          stages: [
            { computeMs: 30, transferMs: 10 },
            { computeMs: 5, transferMs: 4 },
          ],
        },
      ],
    }),
  );
  const out = join(dir, "r.html");
  const r = await run([
    "report",
    "--plan",
    join(dir, "plan.json"),
    "--bench",
    join(dir, "bench.json"),
    "-o",
    out,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^wrote .*r\.html \(\d.*\): .*2 stages, predicted .* per request/);
  const data = embedded(out);
  assert.deepEqual(
    data.stages.map((s) => [s.device, s.start, s.end, s.latency]),
    file.stages.map((s) => [s.device, s.start, s.end, s.latency]),
  );
  assert.equal(data.plan.throughput, file.totals.throughput);
  assert.equal(data.baselines[0].name, "only edge");
  assert.deepEqual(data.bench?.configurations[0].latency, { p50: 0.08, p95: 0.095 });
  assert.ok(data.timeline.measured, "measured timeline from per-stage times");
  assert.match(data.notes[0], /edge: analytic roofline; server: analytic roofline/);

  // The output of `cleave run --json` is taken as the plan's measurements, busy time per stage device.
  writeFileSync(
    join(dir, "run.json"),
    JSON.stringify({
      devices: ["edge", "server"],
      report: {
        throughput: 21,
        latencyMs: { count: 9, mean: 70, min: 60, max: 90, p50: 69, p95: 85, p99: 90 },
      },
      stageBusyMs: { edge: 31, server: 6 },
      bytesPerRequest: 1000,
      maxRelativeDiff: 0,
    }),
  );
  const fromRun = await run([
    "report",
    "--plan",
    join(dir, "plan.json"),
    "--bench",
    join(dir, "run.json"),
    "-o",
    out,
  ]);
  assert.equal(fromRun.code, 0, fromRun.err);
  const measured = embedded(out);
  assert.deepEqual(measured.bench?.configurations[0], {
    name: "plan",
    throughput: 21,
    latency: { p50: 0.069, p95: 0.085, p99: 0.09, mean: 0.07 },
  });
  assert.deepEqual(
    measured.timeline.measured?.steps.filter((st) => st.kind === "compute").map((st) => st.time),
    [0.031, 0.006],
  );

  const j = await run(["report", "--plan", join(dir, "plan.json"), "-o", out, "--json"]);
  assert.equal(j.code, 0, j.err);
  const summary = JSON.parse(j.out) as { output: string; bytes: number; nodes: number; stages: number };
  assert.equal(summary.stages, 2);
  assert.ok(summary.bytes > 100_000, "libraries are inlined");
});

test("cleave report: mistakes give one line naming the file or field", async () => {
  await planFiles();
  const plan = join(dir, "plan.json");
  const bad = (name: string, obj: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, typeof obj === "string" ? obj : JSON.stringify(obj));
    return p;
  };
  const good = JSON.parse(readFileSync(plan, "utf8")) as Record<string, unknown> & {
    stages: Array<Record<string, unknown>>;
  };
  const cases: Array<[string[], number, RegExp]> = [
    [["report"], 2, /missing --plan plan\.json/],
    [["report", "--plan", join(dir, "nope.json")], 1, /nope\.json: no such plan file/],
    [["report", "--plan", bad("p1.json", "{")], 1, /p1\.json: not a JSON plan/],
    [
      ["report", "--plan", bad("p2.json", { ...good, totals: undefined })],
      1,
      /p2\.json: not a cleave plan \(totals: /,
    ],
    [
      [
        "report",
        "--plan",
        bad("p3.json", { ...good, stages: [{ ...good.stages[0], device: "tpu" }, good.stages[1]] }),
      ],
      2,
      /plan: stage 0 runs on unknown device 'tpu' \(devices: edge, server\)/,
    ],
    [
      ["report", "--plan", plan, "--model", "zoo:resnet18", "-o", join(dir, "x.html")],
      2,
      /plan: .* compute nodes.*\(is it the plan of this model\?\)/,
    ],
    [
      ["report", "--plan", plan, "--bench", bad("b1.json", { configurations: [{ name: "plan" }] })],
      1,
      /b1\.json: not a cleave bench file \(configurations\[0\]\.throughput: /,
    ],
  ];
  for (const [args, code, message] of cases) {
    const r = await run(args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, message);
    assert.equal(r.err.trim().split("\n").length, 1, "one line");
  }
});

test("cleave report --profile: measured node latencies of this model; a profile of another model is refused", async () => {
  const { model } = await planFiles();
  const own = join(dir, "profile.json");
  saveProfile(
    await profileModel(model.graph.model, { analyzed: model, runs: 2, warmup: 1, source: "squeezenet.onnx" }),
    own,
  );
  const out = join(dir, "p.html");
  const r = await run(["report", "--plan", join(dir, "plan.json"), "--profile", own, "-o", out]);
  assert.equal(r.code, 0, r.err);
  const data = embedded(out);
  const measured = data.nodes.filter((n) => n.measured !== undefined);
  assert.equal(measured.length, data.nodes.length, "every node has its measured latency");
  assert.ok(measured.some((n) => (n.measured ?? 0) > 0));
  assert.match(data.notes.join(" "), /Measured node latencies: profile on .* with 1 thread/);

  const other = join(dir, "other-profile.json");
  const tiny = new GraphBuilder("tiny");
  tiny.output(tiny.node("Relu", [tiny.input("x", "float32", [1, 8])], {}, "relu"));
  saveProfile(await profileModel(tiny.toModel(), { runs: 1, warmup: 0, source: "tiny.onnx" }), other);
  const bad = await run(["report", "--plan", join(dir, "plan.json"), "--profile", other, "-o", out]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /other-profile\.json: profile of tiny\.onnx \(1 node\), not of squeezenet\.onnx/);
});
