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
import { writePlan } from "../src/partition/plan.js";
import { makePlan } from "../src/partition/planner.js";
import type { ReportInput } from "../src/report/report-data.js";
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

/** A model file, a cluster file and the plan `cleave plan` makes of them (relative model path, Pareto front). */
async function planFiles() {
  const modelPath = join(dir, "squeezenet.onnx");
  saveModel(buildZooModel("squeezenet1_1"), modelPath);
  writeFileSync(join(dir, "cluster.yaml"), stringify(CLUSTER_YAML));
  const cluster = loadCluster(join(dir, "cluster.yaml"));
  const model = await analyzeModel(modelPath);
  const { plan } = makePlan({
    model,
    modelPath: "squeezenet.onnx",
    cluster,
    cost: costModelFor(model, cluster),
    objective: "throughput",
    pareto: true,
  });
  writePlan(join(dir, "plan.json"), plan);
  return { plan, model };
}

/** The data embedded in a written report. */
function embedded(path: string): ReportInput {
  const html = readFileSync(path, "utf8");
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, "the report embeds its data");
  return JSON.parse(m[1]) as ReportInput;
}

test("cleave report: writes the page of a plan, with the bench's measurements", async () => {
  const { plan: file } = await planFiles();
  const S = file.stages.length;
  const devices = file.stages.map((st) => st.device);
  writeFileSync(
    join(dir, "bench.json"),
    JSON.stringify({
      configurations: [
        {
          name: "plan",
          throughput: 20,
          latencyMs: { p50: 80, p95: 95 },
          stages: file.stages.map((st) => ({ computeMs: st.latency * 1100, transferMs: 1 })),
        },
      ],
    }),
  );
  const out = join(dir, "r.html");
  const plan = join(dir, "plan.json");
  const r = await run(["report", "--plan", plan, "--bench", join(dir, "bench.json"), "-o", out]);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.out,
    new RegExp(`^wrote .*r\\.html \\(\\d.*\\): squeezenet, ${S} stages, predicted .* per request`),
  );
  const data = embedded(out);
  assert.deepEqual(
    data.stages.map((st) => [st.device, st.start, st.end, st.latency]),
    file.stages.map((st) => [st.device, st.start, st.end, st.latency]),
  );
  assert.equal(data.plan.throughput, file.totals.throughput);
  assert.deepEqual(
    data.baselines.map((b) => b.name),
    file.baselines.map((b) => b.name),
  );
  assert.ok(data.pareto.length > 0);
  assert.equal(data.pareto.length, file.pareto?.length);
  assert.deepEqual(data.bench?.configurations[0].latency, { p50: 0.08, p95: 0.095 });
  assert.ok(data.timeline.measured, "measured timeline from per-stage times");
  assert.match(data.notes[0], /edge: analytic roofline; server: analytic roofline/);

  // The output of `cleave run --json` is taken as the plan's measurements, busy time per stage device.
  writeFileSync(
    join(dir, "run.json"),
    JSON.stringify({
      devices,
      report: {
        throughput: 21,
        latencyMs: { count: 9, mean: 70, min: 60, max: 90, p50: 69, p95: 85, p99: 90 },
      },
      stageBusyMs: Object.fromEntries(devices.map((d, k) => [d, 10 + k])),
      bytesPerRequest: 1000,
      maxRelativeDiff: 0,
    }),
  );
  const fromRun = await run(["report", "--plan", plan, "--bench", join(dir, "run.json"), "-o", out]);
  assert.equal(fromRun.code, 0, fromRun.err);
  const measured = embedded(out);
  assert.deepEqual(measured.bench?.configurations[0], {
    name: "plan",
    throughput: 21,
    latency: { p50: 0.069, p95: 0.085, p99: 0.09, mean: 0.07 },
  });
  assert.deepEqual(
    measured.timeline.measured?.steps.filter((st) => st.kind === "compute").map((st) => st.time),
    devices.map((_, k) => (10 + k) / 1000),
  );

  // A `cleave bench` file carries the plan it measured: no --plan needed; its "single" row is the baseline
  // that runs on that device.
  const single = file.baselines.find((b) => b.singleDevice !== undefined)!;
  const row = (name: string, devs: string[], tput: number) => ({
    name,
    devices: devs,
    predicted: { throughput: 1, latencyMs: 1 },
    measured: {
      throughput: tput,
      latencyMs: { count: 5, mean: 9, min: 8, max: 10, p50: 9, p95: 10, p99: 10 },
      failed: 0,
    },
    stageBusyMs: Object.fromEntries(devs.map((d) => [d, 4])),
  });
  writeFileSync(
    join(dir, "bench-full.json"),
    JSON.stringify({
      model: "squeezenet.onnx",
      rows: [row("plan", devices, 30), row("single", [single.singleDevice!], 12)],
      plan: { plan: file },
    }),
  );
  const fromBench = await run(["report", "--bench", join(dir, "bench-full.json"), "-o", out]);
  assert.equal(fromBench.code, 0, fromBench.err);
  const benched = embedded(out);
  assert.deepEqual(
    benched.bench?.configurations.map((c) => [c.name, c.throughput]),
    [
      ["plan", 30],
      [single.name, 12],
    ],
  );

  const j = await run(["report", "--plan", plan, "-o", out, "--json"]);
  assert.equal(j.code, 0, j.err);
  const summary = JSON.parse(j.out) as { output: string; bytes: number; nodes: number; stages: number };
  assert.equal(summary.stages, S);
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
        bad("p3.json", {
          ...good,
          stages: good.stages.map((x, k) => (k === 0 ? { ...x, device: "tpu" } : x)),
        }),
      ],
      2,
      /plan: stage 0 runs on unknown device 'tpu' \(devices: edge, server\)/,
    ],
    [
      ["report", "--plan", plan, "--model", "zoo:resnet18", "-o", join(dir, "x.html")],
      1,
      /plan\.json was made for another model \(.*the plan is for squeezenet\.onnx/,
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
