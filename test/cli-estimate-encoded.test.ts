import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { PlanFilePrice } from "../src/cli/estimate-parallel.js";
import type { Plan } from "../src/partition/plan.js";
import { cleave } from "./helpers/cli.js";

// `cleave estimate --plan` of a plan made under a fidelity budget prices its cut tensors as they travel
// (encoded: fewer bytes, plus the encode and decode work), so on the cluster and profile it was planned with it
// gives the plan's own latency again, and shows each encoded tensor's bytes before and after.

let dir: string;
let planFile: string;
let plan: Plan;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "cleave-estimate-encoded-"));
  planFile = join(dir, "plan.json");
  const r = cleave(
    ["plan", "zoo:squeezenet1_1", "--cluster", "camera-server", "--fidelity", "top1=0.99", "-o", planFile],
    { timeoutMs: 180_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  plan = JSON.parse(readFileSync(planFile, "utf8")) as Plan;
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("estimate --plan prices an encoded plan's cut tensors as sent and gives the plan's latency again", () => {
  const sent = plan.encodings?.tensors ?? [];
  assert.ok(sent.length > 0, "camera-server's 20 Mbit/s link makes some encoding pay");
  assert.ok(plan.encodings?.codecTimes, "the plan records the codec times it was priced with");
  const r = cleave(["estimate", "zoo:squeezenet1_1", "--plan", planFile, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const price = JSON.parse(r.stdout) as PlanFilePrice & { fidelity: unknown };
  assert.ok(
    Math.abs(price.latency - price.planLatency) <= 0.02 * price.planLatency,
    `estimate ${price.latency} s against the plan's ${price.planLatency} s`,
  );
  assert.deepEqual(
    price.encodings?.map((e) => [e.tensor, e.encoding]),
    sent.map((e) => [e.tensor, e.encoding]),
  );
  // What crosses camera -> server is the encoded bytes, far below float32's.
  const crossing = price.transfers.filter((t) => t.from !== t.to).reduce((s, t) => s + t.bytes, 0);
  const encoded = sent.reduce((s, e) => s + e.encodedBytes, 0);
  const float32 = sent.reduce((s, e) => s + e.bytes, 0);
  assert.ok(Math.abs(crossing - encoded) <= 0.01 * encoded, `${crossing} bytes cross, ${encoded} encoded`);
  assert.ok(crossing < 0.6 * float32, `${crossing} bytes cross, ${float32} as float32`);
  assert.deepEqual(price.fidelity, plan.encodings?.fidelity);
  const text = cleave(["estimate", "zoo:squeezenet1_1", "--plan", planFile]);
  assert.equal(text.code, 0, text.stderr);
  for (const e of sent)
    assert.match(text.stdout, new RegExp(`${e.tensor.replace(/\./g, "\\.")}\\s+${e.encoding}`));
  assert.match(text.stdout, /planned fidelity on held-out inputs \(budget top1=0\.99\)/);
});

test("a plan whose encodings name a tensor the model lacks: one line naming it", () => {
  const bad = structuredClone(plan);
  bad.encodings!.tensors[0].tensor = "no_such_tensor";
  const file = join(dir, "bad.json");
  writeFileSync(file, JSON.stringify(bad));
  const r = cleave(["estimate", "zoo:squeezenet1_1", "--plan", file]);
  assert.notEqual(r.code, 0);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], /no_such_tensor/);
  assert.ok(!r.stderr.includes("    at "), "no stack trace");
});
