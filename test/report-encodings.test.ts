import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, test } from "node:test";
import { launchBrowser } from "./helpers/browser.js";
import { cleave, oneLineError } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-report-encodings-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const cluster = join(import.meta.dirname, "..", "..", "examples", "clusters", "camera-server.yaml");
const model = "zoo:efficientnet_b0";
const encodedPlan = join(dir, "encoded.json");
const float32Plan = join(dir, "float32.json");

interface PlanJson {
  totals: { latency: number };
  encodings?: {
    tensors: Array<{ tensor: string; encoding: string; bytes: number; encodedBytes: number }>;
    codecTimes?: unknown;
  };
}
const readJson = (f: string): PlanJson => JSON.parse(readFileSync(f, "utf8"));

before(() => {
  // camera-server's 20 Mbit/s link makes an int8 cut pay on EfficientNet-B0 under top1=0.99.
  const enc = cleave(["plan", model, "--cluster", cluster, "--fidelity", "top1=0.99", "-o", encodedPlan], {
    timeoutMs: 300_000,
  });
  assert.equal(enc.code, 0, enc.stderr);
  const f32 = cleave(["plan", model, "--cluster", cluster, "-o", float32Plan], { timeoutMs: 300_000 });
  assert.equal(f32.code, 0, f32.stderr);
  const plan = readJson(encodedPlan);
  assert.ok((plan.encodings?.tensors.length ?? 0) > 0, "the budget plan sends a cut tensor encoded");
  assert.ok(plan.encodings?.codecTimes, "the plan records the codec times it priced");
});

test("estimate --plan of an encoded plan prices the encoded cut as the planner did", () => {
  const plan = readJson(encodedPlan);
  const tensors = plan.encodings!.tensors;
  const r = cleave(["estimate", model, "--plan", encodedPlan, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const est = JSON.parse(r.stdout);
  assert.ok(
    Math.abs(est.latency - plan.totals.latency) <= 0.02 * plan.totals.latency,
    `estimate ${est.latency} s vs the plan's ${plan.totals.latency} s`,
  );
  assert.deepEqual(
    est.encodings.tensors.map((t: { tensor: string; encodedBytes: number }) => [t.tensor, t.encodedBytes]),
    tensors.map((t) => [t.tensor, t.encodedBytes]),
  );
  assert.equal(est.encodings.codecTimes, "plan");
  assert.ok(est.encodings.fidelity.held.samples > 0);
  // The cut between the camera and the server carries the encoded bytes, not float32's.
  const cut = est.transfers.filter((t: { fromStage: number }) => t.fromStage >= 0);
  const sent = cut.reduce((a: number, t: { bytes: number }) => a + t.bytes, 0);
  const wire = tensors.reduce((a, t) => a + t.encodedBytes, 0);
  assert.equal(sent, wire);
  assert.ok(wire < tensors.reduce((a, t) => a + t.bytes, 0));

  const text = cleave(["estimate", model, "--plan", encodedPlan]);
  assert.equal(text.code, 0, text.stderr);
  for (const t of tensors)
    assert.match(text.stdout, new RegExp(`${t.tensor.replace(/\./g, "\\.")}\\s+${t.encoding}`));
  assert.match(text.stdout, /the plan measured on held-out inputs: +max rel error/);
  assert.match(text.stdout, /fidelity budget top1=0\.99/);

  // A plan file without codec times (written before they were recorded): measured again, and said so.
  const old = readJson(encodedPlan);
  delete old.encodings!.codecTimes;
  const oldFile = join(dir, "old.json");
  writeFileSync(oldFile, JSON.stringify(old));
  const o = cleave(["estimate", model, "--plan", oldFile, "--json"]);
  assert.equal(o.code, 0, o.stderr);
  assert.match(o.stderr, /does not record its codec times; timing the encodings with onnxruntime/);
  assert.equal(JSON.parse(o.stdout).encodings.codecTimes, "measured");

  // The float32 plan says nothing of encodings.
  const f = cleave(["estimate", model, "--plan", float32Plan, "--json"]);
  assert.equal(f.code, 0, f.stderr);
  assert.equal(JSON.parse(f.stdout).encodings, undefined);
});

test("an encoded tensor the model does not have: a one-line error naming it (estimate, report)", () => {
  const plan = readJson(encodedPlan);
  plan.encodings!.tensors[0].tensor = "no_such_tensor";
  const bad = join(dir, "bad.json");
  writeFileSync(bad, JSON.stringify(plan));
  assert.match(
    oneLineError(cleave(["estimate", model, "--plan", bad])),
    /^error: .*bad\.json: encodings: 'no_such_tensor' is not a tensor of zoo:efficientnet_b0$/,
  );
  assert.match(
    oneLineError(cleave(["report", "--plan", bad, "-o", join(dir, "bad.html")])),
    /^error: plan: encodings: 'no_such_tensor' is not a tensor of zoo:efficientnet_b0$/,
  );
});

test("report of an encoded plan shows bytes before and after, the budget and fidelity; float32 claims none", async () => {
  const plan = readJson(encodedPlan);
  const t = plan.encodings!.tensors[0];
  const out = join(dir, "encoded.html");
  const r = cleave(["report", "--plan", encodedPlan, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const html = readFileSync(out, "utf8");
  assert.match(html, /id="sec-encodings"/);
  assert.match(html, /data-field="budget">top1=0\.99</);
  assert.match(html, /data-field="calibration">generated/);
  assert.ok(html.includes(`data-encoded="${t.tensor}"`));
  assert.match(html, /data-fidelity="calibration"/);
  assert.match(html, /data-fidelity="held"/);
  assert.match(html, /Top-1 agree/);
  assert.ok(html.includes(`"sentBytes":${t.encodedBytes}`), "the page's data carries the bytes sent");

  const f32 = join(dir, "float32.html");
  const f = cleave(["report", "--plan", float32Plan, "-o", f32]);
  assert.equal(f.code, 0, f.stderr);
  const plain = readFileSync(f32, "utf8");
  for (const claim of ['id="sec-encodings"', "Compressed cuts", '"sentBytes"', '"encodings"', "int8-channel"])
    assert.ok(!plain.includes(claim), `the float32 report says nothing of '${claim}'`);

  // In the browser: the stage table's sends show the tensor's bytes as float32 and as sent, with the encoding.
  const browser = await launchBrowser(join(dir, "profile"));
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pathToFileURL(out).href);
    await page.waitForSelector("html[data-ready=true]", { timeout: 30_000 });
    assert.deepEqual(errors, []);
    const sends = await page.$eval("#stage-table", (el) => el.textContent ?? "");
    assert.ok(sends.includes(`${t.tensor} ·`), sends);
    assert.match(sends, new RegExp(`→ [0-9.]+ KiB ${t.encoding}`));
    const rows = await page.$$eval("#encoding-table tbody tr", (rs) => rs.length);
    assert.equal(rows, plan.encodings!.tensors.length);
  } finally {
    await browser.close();
  }
});
