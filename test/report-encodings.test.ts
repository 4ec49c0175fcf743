import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fmtBytes } from "../src/cluster/units.js";
import type { Plan } from "../src/partition/plan.js";
import { cleave } from "./helpers/cli.js";

// The report of a plan made under a fidelity budget shows each encoded cut tensor's bytes as float32 and as
// sent, the budget, where the calibration inputs came from and the fidelity measured; a float32 plan's report
// claims none of it.

const dir = mkdtempSync(join(tmpdir(), "cleave-report-encodings-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function planAndReport(extra: string[]): { plan: Plan; html: string } {
  const planFile = join(dir, `plan${extra.length}.json`);
  const p = cleave(["plan", "zoo:squeezenet1_1", "--cluster", "camera-server", ...extra, "-o", planFile], {
    timeoutMs: 180_000,
  });
  assert.equal(p.code, 0, p.stderr);
  const out = join(dir, `report${extra.length}.html`);
  const r = cleave(["report", "--plan", planFile, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  return { plan: JSON.parse(readFileSync(planFile, "utf8")) as Plan, html: readFileSync(out, "utf8") };
}

test("an encoded plan's report shows bytes before and after per cut tensor and the fidelity measured", () => {
  const { plan, html } = planAndReport(["--fidelity", "top1=0.99"]);
  const e = plan.encodings!;
  assert.ok(e.tensors.length > 0, "camera-server's link makes some encoding pay");
  const section = html.slice(
    html.indexOf('id="sec-encodings"'),
    html.indexOf("</section>", html.indexOf('id="sec-encodings"')),
  );
  assert.ok(section.length > 0, "the report has a compressed-cuts section");
  for (const t of e.tensors) {
    const row = new RegExp(
      `<td>${t.tensor.replace(/\./g, "\\.")}</td><td>${t.encoding}</td><td class="num">${fmtBytes(t.bytes)}</td><td class="num">${fmtBytes(t.encodedBytes)}</td>`,
    );
    assert.match(section, row);
  }
  assert.match(section, /top1=0\.99/);
  assert.match(section, /Calibration inputs generated/);
  assert.match(section, /held-out inputs<\/td><td>max rel error [\d.e-]+, mean [\d.e-]+, top-1 [\d.]+%/);
  assert.match(section, /Best float32 plan: /);
});

test("a float32 plan's report has no compressed-cuts section", () => {
  const { plan, html } = planAndReport([]);
  assert.equal(plan.encodings, undefined);
  assert.ok(!html.includes('id="sec-encodings"'));
});
