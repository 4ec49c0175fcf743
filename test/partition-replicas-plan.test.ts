import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { CleaveError } from "../src/errors.js";
import { type AnalyzedModel, analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { resolveConstraints } from "../src/partition/constraints.js";
import { evaluateReplicas } from "../src/partition/evaluate-replicas.js";
import { readPlan, stageDevices, writePlan } from "../src/partition/plan.js";
import { makePlan } from "../src/partition/planner.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-replicas-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A conv chain: heavy compute, small activations, so replicas pay off. */
function modelFile(): string {
  const b = new GraphBuilder("chain");
  let h = b.input("x", "float32", [1, 16, 32, 32]);
  for (let i = 0; i < 6; i++) {
    h = b.node("Conv", [h, b.weight(`w${i}`, [16, 16, 3, 3])], { pads: [1, 1, 1, 1] }, `conv${i}`);
    h = b.node("Relu", [h], {}, `relu${i}`);
  }
  b.output(b.node("GlobalAveragePool", [h], {}, "pool"));
  const path = join(dir, "chain.onnx");
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

const clusterText = (bMemory = "1GiB") => `
name: pair
inputDevice: a
outputDevice: a
devices:
  - { name: a, kind: cpu, throughput: 2 GMAC/s, memoryBandwidth: 10GB/s, memory: 1GiB, idlePower: 1W, activePower: 3W }
  - { name: b, kind: cpu, throughput: 2 GMAC/s, memoryBandwidth: 10GB/s, memory: ${bMemory}, idlePower: 1W, activePower: 3W }
  - { name: c, kind: cpu, throughput: 1 GMAC/s, memoryBandwidth: 10GB/s, memory: 1GiB, idlePower: 1W, activePower: 2W }
links:
  - { devices: [a, b, c], kind: ethernet, bandwidth: 1Gbit/s, latency: 0.1ms, energyPerBit: 1nJ/bit }
`;

let path: string;
let model: AnalyzedModel;
let cluster: Cluster;
before(async () => {
  path = modelFile();
  model = await analyzeModel(path, { source: path });
  writeFileSync(join(dir, "pair.yaml"), clusterText());
  writeFileSync(join(dir, "tight.yaml"), clusterText("1KiB"));
  cluster = loadCluster(join(dir, "pair.yaml"));
});

const plan = (opts: Partial<Parameters<typeof makePlan>[0]> = {}) =>
  makePlan({
    model,
    modelPath: path,
    cluster,
    cost: costModelFor(model, cluster),
    objective: "throughput",
    ...opts,
  });

test("replica plans: makePlan picks replica groups for throughput, records them, and --no-replicas does not", () => {
  const out = plan();
  const p = out.plan;
  assert.ok(out.replicated, "a replicated plan wins on three compute-bound devices");
  assert.ok(p.stages.some((s) => s.replicas && s.replicas.length > 1));
  assert.match(p.planner.method, /replica/);
  assert.equal(p.planner.exact, true);
  for (const s of p.stages) {
    if (!s.replicas) continue;
    assert.equal(s.device, s.replicas[0].device);
    const sum = s.replicas.reduce((a, r) => a + r.share, 0);
    assert.ok(Math.abs(sum - 1) < 1e-12, `shares sum to ${sum}`);
    assert.ok(Math.abs(1 / s.period! - s.replicas.reduce((a, r) => a + 1 / r.period, 0)) < 1e-6);
  }
  // The plan's totals are the replica evaluator's on the plan's own groups.
  const ev = evaluateReplicas(out.problem, out.replicated.candidate, resolveConstraints(out.problem, {}));
  assert.equal(p.totals.throughput, ev.throughput);
  assert.ok(p.links.some((l) => l.share !== undefined && l.share < 1));
  // Round trip through the plan file.
  const file = join(dir, "plan.json");
  writePlan(file, p);
  const back = readPlan(file);
  assert.deepEqual(back.stages.map(stageDevices), p.stages.map(stageDevices));
  // Data parallelism is a baseline, listed with its replicas.
  const dp = p.baselines.find((b) => b.name === "data-parallel")!;
  assert.deepEqual(dp.stages[0].replicas, ["a", "b", "c"]);
  assert.ok(dp.feasible && dp.ratio !== null && dp.ratio >= 1 - 1e-9);

  const pipe = plan({ replicas: false });
  assert.equal(pipe.replicated, undefined);
  assert.ok(pipe.plan.stages.every((s) => s.replicas === undefined));
  assert.ok(pipe.plan.totals.throughput < p.totals.throughput);
});

test("replica plans: a --min-fps only replicas reach is met at least latency; pipelines alone are infeasible", () => {
  const pipe = plan({ replicas: false }).plan.totals.throughput;
  const best = plan().plan.totals.throughput;
  const minThroughput = (pipe + best) / 2;
  const out = plan({ objective: "latency", constraints: { minThroughput } });
  assert.ok(out.plan.totals.throughput >= minThroughput);
  assert.ok(out.plan.stages.some((s) => s.replicas));
  assert.throws(
    () => plan({ objective: "latency", constraints: { minThroughput }, replicas: false }),
    (e: unknown) => e instanceof CleaveError && e.code === "INFEASIBLE",
  );
});

test("cleave plan prints replica groups; cleave estimate prices a+b groups and rejects bad groups in one line", () => {
  const pl = cleave(["plan", path, "--cluster", join(dir, "pair.yaml"), "--objective", "throughput"]);
  assert.equal(pl.code, 0, pl.stderr);
  assert.match(pl.stdout, /\+.*\(shares \d+%\/\d+%/);
  const js = cleave([
    "plan",
    path,
    "--cluster",
    join(dir, "pair.yaml"),
    "--objective",
    "throughput",
    "--json",
  ]);
  assert.ok(JSON.parse(js.stdout).stages.some((s: { replicas?: unknown[] }) => s.replicas));
  const no = cleave([
    "plan",
    path,
    "--cluster",
    join(dir, "pair.yaml"),
    "--objective",
    "throughput",
    "--no-replicas",
  ]);
  assert.equal(no.code, 0, no.stderr);
  assert.doesNotMatch(no.stdout, /shares/);

  const est = (devices: string, file = "pair.yaml", extra: string[] = []) =>
    cleave(["estimate", path, "--cluster", join(dir, file), "--devices", devices, ...extra]);
  const ok = est("a+b,c");
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /a\+b \(shares 50%\/50%\)/);
  const j = JSON.parse(est("a+b+c", "pair.yaml", ["--json"]).stdout);
  assert.deepEqual(j.stages[0].devices, ["a", "b", "c"]);
  const oneLine = (r: { code: number; stderr: string }, re: RegExp) => {
    assert.notEqual(r.code, 0);
    const lines = r.stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("error"));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], re);
  };
  oneLine(est("a+b", "tight.yaml"), /stage 0 needs .* on b, which has 1\.00 KiB/);
  oneLine(est("a+b", "pair.yaml", ["--stages", "3"]), /stage 1 has no device/);
  oneLine(est("a,b", "pair.yaml", ["--stages", "3"]), /stage 2 has no device/);
  oneLine(est("a+x"), /unknown device 'x'/);
  oneLine(est("a+b,b"), /'b' is in two groups/);
});
