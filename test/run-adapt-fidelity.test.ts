import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-adapt-fid-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("run --fidelity --adapt plans under the budget and serves every request on local workers", () => {
  const r = cleave(
    [
      "run",
      "zoo:squeezenet1_1",
      "--cluster",
      "camera-server",
      "--fidelity",
      "top1=0.99",
      "--adapt",
      "--requests",
      "40",
      "--json",
    ],
    { timeoutMs: 120000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.report.completed, 40);
  assert.equal(out.report.failed, 0);
  assert.ok(Array.isArray(out.replans));
});

test("bad input: --fidelity with --stages, --adapt with an encoded plan that records no budget: one line each", () => {
  const last = (r: { stderr: string }) => {
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.filter((l) => l.startsWith("error:")).length, 1, r.stderr);
    assert.ok(!r.stderr.includes("    at "), "no stack trace");
    return lines[lines.length - 1];
  };
  const both = cleave(["run", "zoo:squeezenet1_1", "--stages", "2", "--fidelity", "top1=0.99"]);
  assert.notEqual(both.code, 0);
  assert.match(last(both), /^error: --fidelity: run plans the split under the budget itself/);
  const planFile = join(dir, "p.json");
  const made = cleave([
    "plan",
    "zoo:squeezenet1_1",
    "--cluster",
    "camera-server",
    "--fidelity",
    "top1=0.99",
    "-o",
    planFile,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const plan = JSON.parse(readFileSync(planFile, "utf8"));
  assert.ok(plan.encodings, "the plan records its encodings");
  plan.encodings.budget = {};
  writeFileSync(planFile, JSON.stringify(plan));
  const r = cleave(["run", "zoo:squeezenet1_1", "--plan", planFile, "--adapt", "--requests", "4"]);
  assert.notEqual(r.code, 0);
  assert.match(last(r), /^error: --adapt: .*p\.json records no fidelity budget for its encodings/);
});
