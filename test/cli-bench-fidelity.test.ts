import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { BenchResult } from "../src/harness/bench.js";
import { hasTaskset } from "../src/runtime/coordinator/local-cluster.js";
import { cleave, oneLineError } from "./helpers/cli.js";
import { cameraServerYaml } from "./helpers/pair.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-bench-fidelity-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// camera-server's shape on local workers: the camera holds the input and is priced at an eighth of a core, the
// link is slow enough for int8 cuts to pay, fast enough for the whole model on the server to be the best single
// device (so that row reads the input off the camera and gets an encoder stage there when relayed).
const cluster = join(dir, "slow-link.yaml");
writeFileSync(cluster, cameraServerYaml("slow-link", "200Mbit/s"));

test("bench --fidelity: a budget row with its encodings and measured error beside the float32 rows", {
  skip: hasTaskset() ? false : "taskset is missing",
}, () => {
  const out = join(dir, "bench.json");
  const r = cleave(
    [
      "bench",
      "zoo:squeezenet1_1",
      "--cluster",
      cluster,
      "--fidelity",
      "top1=0.99",
      "--requests",
      "8",
      "--rounds",
      "2",
      "--no-corun",
      "-o",
      out,
    ],
    { timeoutMs: 180_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const b = JSON.parse(readFileSync(out, "utf8")) as BenchResult;
  assert.deepEqual(
    b.rows.map((row) => row.name),
    ["plan", "single", "budget"],
  );
  const [plan, single, budget] = b.rows;
  assert.ok(b.budget, "the result carries the budget's figures");
  // The float32 rows: the best float32 plan (the one the budget plan was compared with) and the whole model,
  // exact as without a budget.
  assert.equal(plan.predicted.throughput, b.budget.encodings.float32?.throughput);
  for (const row of [plan, single])
    assert.ok(row.maxRelativeDiff < 1e-4, `${row.name}: outputs differ by ${row.maxRelativeDiff}`);
  // The slow link makes int8 cuts pay: each encoded tensor is smaller, and the fidelity was measured.
  assert.ok(b.budget.encodings.tensors.length > 0, "some cut tensor is encoded");
  for (const t of b.budget.encodings.tensors) assert.ok(t.encodedBytes < t.bytes, t.tensor);
  assert.equal(b.budget.encodings.fidelity.held.samples, 8);
  assert.ok((b.budget.encodings.fidelity.held.top1 ?? 0) >= 0.99);
  // Every request of the budget row was compared with the whole model: lossy, so above 0, but not far off.
  assert.ok(b.budget.referenceChecked >= 8, `${b.budget.referenceChecked} requests compared`);
  assert.equal(b.budget.maxRelativeDiff, budget.maxRelativeDiff);
  assert.ok(budget.maxRelativeDiff > 0 && budget.maxRelativeDiff < 0.1, `${budget.maxRelativeDiff}`);
  assert.equal(b.budget.speedup.throughput, budget.measured.throughput / plan.measured.throughput);
  assert.equal(b.budget.speedup.latency, plan.alone.latencyMs.p50 / budget.alone.latencyMs.p50);
  assert.equal(
    budget.throughputError,
    (budget.predicted.throughput - budget.measured.throughput) / budget.measured.throughput,
  );
  // The input went through the camera in every row; a stage added there to relay it is not one of the row's.
  assert.equal(b.budget.relayInputs, true);
  for (const row of b.rows) {
    assert.equal(row.measured.failed, 0, row.name);
    assert.deepEqual(
      row.replicas?.map((x) => [x.stage, x.device]),
      row.devices.map((d, s) => [s, d]),
      `${row.name}: one entry per stage of its plan`,
    );
  }
  assert.ok(
    b.findings.every((f) => !f.includes("budget")),
    "the budget row is not a finding",
  );
  // The table says it all too.
  assert.match(r.stdout, /^under budget +camera > server /m);
  for (const t of b.budget.encodings.tensors)
    assert.match(r.stdout, new RegExp(`  ${t.tensor}: ${t.encoding}, .* -> `));
  assert.match(r.stdout, /measured on held-out inputs: +max rel error/);
  assert.match(r.stdout, /speed-up over the float32 plan: [\d.]+x throughput .* latency alone/);
  assert.match(r.stdout, /measured against the whole model over \d+ requests: max rel diff \d/);
});

test("bench: --encodings is checked, and needs a budget", () => {
  assert.match(
    oneLineError(cleave(["bench", "zoo:squeezenet1_1", "--fidelity", "top1=0.99", "--encodings", "foo"])),
    /^error: --encodings: unknown encoding 'foo' \(known: .*\)$/,
  );
  assert.match(
    oneLineError(cleave(["bench", "zoo:squeezenet1_1", "--encodings", "int8"])),
    /^error: --encodings\/--calibration: give a budget with --fidelity or --max-rel-error$/,
  );
  assert.match(
    oneLineError(cleave(["bench", "zoo:squeezenet1_1", "--fidelity", "top3=0.9"])),
    /^error: --fidelity: unknown key 'top3'/,
  );
});
