import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-replicas-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));
process.env.CLEAVE_CACHE_DIR = join(dir, "cache");

/** A conv net heavy enough that two one-core devices gain from sharing requests, with a small input. */
function model(): string {
  const b = new GraphBuilder("replicable", { seed: 3 });
  let h = b.input("x", "float32", [1, 8, 32, 32]);
  for (let i = 0; i < 6; i++)
    h = b.node("Relu", [b.node("Conv", [h, b.weight(`w${i}`, [8, 8, 3, 3])], { pads: [1, 1, 1, 1] })]);
  b.output(b.node("GlobalAveragePool", [h]));
  const path = join(dir, "m.onnx");
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

test("plan, split and run a replicated plan on the local cluster: one stage file, both devices serve, outputs exact", () => {
  const m = model();
  const planFile = join(dir, "plan.json");
  const p = cleave(["plan", m, "--objective", "throughput", "-o", planFile]);
  assert.equal(p.code, 0, p.stderr);
  const plan = JSON.parse(readFileSync(planFile, "utf8"));
  const replicated = plan.stages.find((s: { replicas?: unknown[] }) => s.replicas);
  assert.ok(replicated, `the plan replicates a stage:\n${p.stdout}`);
  assert.match(p.stdout, /core0\+core1 \(shares \d+%\/\d+%\)/);
  const out = join(dir, "split");
  const s = cleave(["split", m, "--plan", planFile, "-o", out]);
  assert.equal(s.code, 0, s.stderr);
  const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  assert.equal(manifest.stages.length, plan.stages.length);
  const k = plan.stages.indexOf(replicated);
  assert.deepEqual(
    manifest.stages[k].devices,
    replicated.replicas.map((r: { device: string }) => r.device),
  );
  const r = cleave(["run", m, "--plan", planFile, "--requests", "40", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const run = JSON.parse(r.stdout);
  assert.equal(run.report.failed, 0);
  assert.equal(run.report.completed, 40);
  assert.ok(run.maxRelativeDiff <= 1e-6, `outputs differ by ${run.maxRelativeDiff}`);
  const served = run.replicas.filter((x: { stage: number; completed: number }) => x.stage === k);
  assert.equal(served.length, replicated.replicas.length);
  for (const x of served) assert.ok(x.completed > 0, `replica ${x.device} served no request`);
  assert.equal(
    served.reduce((sum: number, x: { completed: number }) => sum + x.completed, 0),
    40,
  );
  // --no-replicas plans one device per stage.
  const pipe = cleave(["plan", m, "--objective", "throughput", "--no-replicas", "--json"]);
  assert.equal(pipe.code, 0, pipe.stderr);
  assert.ok(JSON.parse(pipe.stdout).stages.every((x: { replicas?: unknown }) => x.replicas === undefined));
});
