import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-tiles-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));
process.env.CLEAVE_CACHE_DIR = join(dir, "cache");

/** A fully convolutional net (odd height, a stride-2 conv and a padded max pool), every layer tileable. */
function model(): string {
  const b = new GraphBuilder("tileable", { seed: 4 });
  let h = b.input("x", "float32", [1, 8, 75, 64]);
  h = b.node("Conv", [h, b.weight("w0", [16, 8, 3, 3])], { pads: [1, 1, 1, 1], strides: [2, 2] });
  h = b.node("MaxPool", [h], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] });
  for (let i = 1; i < 6; i++)
    h = b.node("Relu", [b.node("Conv", [h, b.weight(`w${i}`, [16, 16, 3, 3])], { pads: [1, 1, 1, 1] })]);
  b.output(h);
  const path = join(dir, "m.onnx");
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

test("plan --tiles 2, split and run on real local workers: both devices compute tiles, outputs exact", () => {
  const m = model();
  const planFile = join(dir, "plan.json");
  const p = cleave(["plan", m, "--tiles", "2", "-o", planFile]);
  assert.equal(p.code, 0, p.stderr);
  // The planner may start the tile stack at any layer (a first layer alone on one device is as good).
  assert.match(p.stdout, /tiles: \S+ -> \S+ in 2 row tiles/);
  const plan = JSON.parse(readFileSync(planFile, "utf8"));
  assert.equal(plan.tiles.stacks[0].tiles, 2);
  const tileDevices = new Set(
    plan.stages
      .filter((s: { nodes: string[] }) => s.nodes.some((n) => /\.tile\d$/.test(n)))
      .map((s: { device: string }) => s.device),
  );
  assert.deepEqual([...tileDevices].sort(), ["core0", "core1"]);
  // estimate --plan prices the saved tiled plan again: the same stages, the latency the plan recorded.
  const e = cleave(["estimate", m, "--plan", planFile, "--json"]);
  assert.equal(e.code, 0, e.stderr);
  const est = JSON.parse(e.stdout);
  assert.equal(est.stages.length, plan.stages.length);
  assert.equal(est.tiles, 1);
  assert.ok(Math.abs(est.latency - plan.totals.latency) <= 1e-9 * plan.totals.latency, `${est.latency}`);
  const tl = plan.tiles.timeline;
  const tiles = plan.stages.filter((s: { nodes: string[] }) => s.nodes.some((n) => /\.tile\d$/.test(n)));
  assert.ok(est.stages[tiles[0].index].start < est.stages[tiles[1].index].finish, "tiles overlap");
  assert.ok(Math.abs(est.stages[tiles[0].index].finish - tl[tiles[0].index].finish) < 1e-9);
  const bad = cleave(["estimate", m, "--plan", planFile, "--stages", "2"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--plan gives the stages; drop --stages/);
  const out = join(dir, "split");
  const s = cleave(["split", m, "--plan", planFile, "-o", out]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(
    JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).stages.length,
    plan.stages.length,
  );
  const r = cleave(["run", m, "--plan", planFile, "--requests", "6", "--in-flight", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const run = JSON.parse(r.stdout);
  assert.equal(run.report.failed, 0);
  assert.equal(run.report.completed, 6);
  assert.ok(run.maxRelativeDiff <= 1e-6, `outputs differ by ${run.maxRelativeDiff}`);
  // Every request (warm-up and measured) was compared with the model as given, not the tiled rewrite.
  assert.ok(run.referenceChecked >= 1 + 6, `${run.referenceChecked} requests checked`);
  assert.ok(run.stageBusyMs.core0 > 0 && run.stageBusyMs.core1 > 0, "both devices computed");
  for (const d of ["core0", "core1"])
    assert.ok(run.stageServiceMs[d] >= run.stageBusyMs[d], `${d}: service time holds onnxruntime's`);
  // --no-parallel keeps the stages one after another (no tiles in the plan).
  const seq = cleave(["plan", m, "--no-parallel", "--json"]);
  assert.equal(seq.code, 0, seq.stderr);
  assert.equal(JSON.parse(seq.stdout).tiles, undefined);
});
