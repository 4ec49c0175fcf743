import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { launchBrowser } from "./helpers/browser.js";
import { cleave } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "cleave-report-parallel-"));
after(() => rmSync(dir, { recursive: true, force: true }));
process.env.CLEAVE_CACHE_DIR = join(dir, "cache");

/** A fully convolutional net every layer of which can be tiled. */
function model(): string {
  const b = new GraphBuilder("tileable", { seed: 4 });
  let h = b.input("x", "float32", [1, 8, 75, 64]);
  for (let i = 0; i < 6; i++)
    h = b.node("Relu", [b.node("Conv", [h, b.weight(`w${i}`, [8, 8, 3, 3])], { pads: [1, 1, 1, 1] })]);
  b.output(h);
  const path = join(dir, "m.onnx");
  writeFileSync(path, encodeModel(b.toModel()));
  return path;
}

test("report of a tiled plan: one request drawn as lanes per device, tiles side by side, in Chromium", async () => {
  const m = model();
  const planFile = join(dir, "plan.json");
  const p = cleave(["plan", m, "--tiles", "2", "-o", planFile]);
  assert.equal(p.code, 0, p.stderr);
  const plan = JSON.parse(readFileSync(planFile, "utf8"));
  const out = join(dir, "report.html");
  const r = cleave(["report", "--plan", planFile, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const browser = await launchBrowser(join(dir, "profile"));
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pathToFileURL(out).href);
    await page.waitForSelector("html[data-ready=true]", { timeout: 30_000 });
    assert.deepEqual(errors, []);
    const bars = await page.$$eval("#lanes rect.lane-bar", (rs) =>
      rs.map((r) => ({
        kind: r.getAttribute("data-kind"),
        stage: Number(r.getAttribute("data-stage")),
        x: Number(r.getAttribute("x")),
        y: Number(r.getAttribute("y")),
        w: Number(r.getAttribute("width")),
      })),
    );
    assert.equal(bars.length, plan.stages.length, "one bar per stage");
    const tiles = bars.filter((b) => b.kind === "tile");
    assert.equal(tiles.length, 2);
    assert.notEqual(tiles[0].y, tiles[1].y, "the two tiles are on two lanes");
    assert.ok(tiles[0].x < tiles[1].x + tiles[1].w && tiles[1].x < tiles[0].x + tiles[0].w, "side by side");
  } finally {
    await browser.close();
  }
});
