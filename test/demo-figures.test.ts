import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { hasTaskset } from "../src/runtime/coordinator/local-cluster.js";
import { fmtPercent, fmtRatio } from "../src/harness/bench-figures.js";
import { launchBrowser } from "./helpers/browser.js";
import { cleave } from "./helpers/cli.js";

test("demo: the speed-up on screen, in bench.json and in the report is one number, the table's ratio", {
  skip: hasTaskset() ? false : "taskset is missing",
  timeout: 600_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-demo-"));
  const out = join(dir, "demo");
  process.env.CLEAVE_CACHE_DIR = join(dir, "cache"); // the spawned demo inherits it
  const r = cleave(["demo", "--model", "squeezenet1_1", "--requests", "10", "-o", out], {
    timeoutMs: 540_000,
  });
  assert.equal(r.code, 0, r.stderr);
  // The local devices were priced from a profile measured here and cached, said in one line.
  assert.match(
    r.stderr,
    /^cleave: core0, core1 priced from a profile of .* measured now on this machine in .*, cached in /m,
  );

  const line =
    /speed-up over the best single device: (\d+\.\d+x) measured \((\d+\.\d)\/s over (\d+\.\d)\/s/.exec(
      r.stdout,
    );
  assert.ok(line, r.stdout);
  const bench = JSON.parse(readFileSync(join(out, "bench.json"), "utf8"));
  assert.equal(line[1], fmtRatio(bench.speedup), "terminal and JSON");
  assert.equal(bench.speedup, bench.rows[0].measured.throughput / bench.rows[1].measured.throughput);
  // The table's own figures give the same ratio (to the table's rounding).
  const [plan, single] = [Number(line[2]), Number(line[3])];
  assert.equal(plan, Number(bench.rows[0].measured.throughput.toFixed(1)));
  assert.equal(single, Number(bench.rows[1].measured.throughput.toFixed(1)));
  // Each figure is rounded to 0.05 at most, so |p/s - P/S| <= 0.05 (P + S) / (s S).
  const [P, S] = [bench.rows[0].measured.throughput, bench.rows[1].measured.throughput];
  assert.ok(Math.abs(plan / single - bench.speedup) <= (0.05 * (P + S)) / (single * S) + 1e-9);
  for (const f of bench.findings) assert.ok(r.stdout.includes(`note: ${f}`), `finding printed: ${f}`);

  const browser = await launchBrowser(join(dir, "profile"));
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(pathToFileURL(join(out, "report.html")).href);
    await page.waitForSelector("html[data-ready=true]", { timeout: 60_000 });
    const card = (await page.locator('[data-kpi="speedup"]').textContent()) ?? "";
    assert.match(card, new RegExp(`measured ${line[1].replace(".", "\\.")}`), "report");
    // Prediction errors: the table's, the JSON's and the report's are one number too.
    const esc = (x: string) => x.replace(/[.+]/g, "\\$&");
    const plan = bench.rows[0];
    const tableRow = r.stdout.split("\n").find((l) => l.startsWith("plan ")) ?? "";
    for (const e of [plan.throughputError, plan.latencyError])
      assert.ok(tableRow.includes(fmtPercent(e)), tableRow);
    const tput = (await page.locator('[data-kpi="throughput"]').textContent()) ?? "";
    assert.match(
      tput,
      new RegExp(`prediction ${esc(fmtPercent(plan.throughputError))}`),
      "report throughput",
    );
    const lat = (await page.locator('[data-kpi="latency"]').textContent()) ?? "";
    assert.match(lat, new RegExp(`prediction ${esc(fmtPercent(plan.latencyError))}`), "report latency");
    const notes = await page.locator("#notes li.finding").allTextContents();
    assert.deepEqual(notes, bench.findings, "the report shows the bench's findings");
  } finally {
    await browser.close();
  }
});
