/**
 * Benchmark of the HTML report: for zoo models of ~200-370 nodes planned on a three-device cluster (exact
 * planner, baselines, Pareto front), the time to build and write the report, and
 * the time until it is interactive (graph laid out, every chart drawn: `html[data-ready]`) in headless
 * Chromium driven by playwright-core, measured from navigation start. The first open in a fresh browser is
 * reported apart (cold), then the median and worst of further opens in new tabs. Target: < 2000 ms.
 * Usage: node dist/bench/report-open.js [model ...] [--runs N] [--keep DIR]. Prints one JSON object; --keep
 * leaves the reports in DIR.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { makePlan } from "../src/partition/planner.js";
import { renderReportHtml } from "../src/report/report-html.js";
import { reportInputFrom } from "../src/report/report-input.js";
import { buildZooModel } from "../src/zoo/index.js";
import { CHROMIUM, CHROMIUM_ARGS } from "../test/helpers/browser.js";

const TARGET_MS = 2000;

const args = process.argv.slice(2);
const flag = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const runs = Number(flag("--runs") ?? 5);
const keep = flag("--keep");
const models = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
if (models.length === 0) models.push("efficientnet_b0", "googlenet", "vit_tiny");

const device = (name: string, gmacs: number, mem: number, power: number) => ({
  name,
  kind: "cpu" as const,
  macsPerSecond: { float32: gmacs * 1e9 },
  memoryBandwidth: 10e9,
  memory: mem * 2 ** 20,
  idlePower: 1,
  activePower: power,
});
const CLUSTER: Cluster = {
  name: "three-boards",
  devices: [device("camera", 20, 256, 3), device("pi5", 60, 1024, 6), device("jetson", 200, 2048, 12)],
  links: [
    { devices: ["camera", "pi5"], kind: "ethernet", bandwidth: 125e6, latency: 2e-4, energyPerBit: 5e-9 },
    { devices: ["pi5", "jetson"], kind: "ethernet", bandwidth: 125e6, latency: 2e-4, energyPerBit: 5e-9 },
    { devices: ["camera", "jetson"], kind: "wifi", bandwidth: 25e6, latency: 2e-3, energyPerBit: 5e-8 },
  ],
  inputDevice: "camera",
  outputDevice: "camera",
};

/** Plans a zoo model as `cleave plan --pareto` does and writes its report as `cleave report` does; times in ms. */
async function buildReport(name: string, file: string) {
  const t0 = performance.now();
  const model = await analyzeModel(buildZooModel(name), { source: name });
  const cost = costModelFor(model, CLUSTER);
  const { plan } = makePlan({
    model,
    modelPath: `zoo:${name}`,
    cluster: CLUSTER,
    cost,
    objective: "throughput",
    pareto: true,
  });
  const tPlan = performance.now();
  const input = reportInputFrom({ model, plan, cluster: CLUSTER, name });
  const html = renderReportHtml(input);
  writeFileSync(file, html);
  const tEnd = performance.now();
  return {
    nodes: input.nodes.length,
    edges: input.edges.length,
    stages: plan.stages.length,
    paretoPoints: input.pareto.length,
    planMs: tPlan - t0,
    renderMs: tEnd - tPlan,
    htmlKiB: statSync(file).size / 1024,
  };
}

async function main() {
  const { chromium } = await import("playwright-core");
  const dir = mkdtempSync(join(tmpdir(), "cleave-bench-report-"));
  const out = keep ?? dir;
  const results: Record<string, unknown>[] = [];
  try {
    for (const name of models) {
      const file = join(out, `${name}.html`);
      const built = await buildReport(name, file);
      const tLaunch = performance.now();
      const browser = await chromium.launchPersistentContext(join(dir, `profile-${name}`), {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1400, height: 900 },
      });
      const launchMs = performance.now() - tLaunch;
      const opens: number[] = [];
      const scripts: number[] = [];
      const errors: string[] = [];
      try {
        for (let r = 0; r < runs + 1; r++) {
          const page = await browser.newPage();
          page.on("pageerror", (e) => errors.push(e.message));
          page.on("console", (m) => {
            if (m.type() === "error") errors.push(m.text());
          });
          await page.goto(pathToFileURL(file).href);
          await page.waitForSelector("html[data-ready=true]", { timeout: 60_000 });
          // On the page's own clock: navigation start -> ready (painted), and the page script's start -> ready.
          const t = await page.evaluate(() => {
            const R = (window as unknown as { CleaveReport: { readyAt: number; readyMs: number } })
              .CleaveReport;
            return { ready: R.readyAt, script: R.readyMs };
          });
          opens.push(t.ready);
          scripts.push(t.script);
          await page.close();
        }
      } finally {
        await browser.close();
      }
      const warm = opens.slice(1).sort((a, b) => a - b);
      results.push({
        model: name,
        ...built,
        launchMs,
        coldOpenMs: opens[0],
        openMedianMs: warm[Math.floor(warm.length / 2)],
        openMaxMs: warm[warm.length - 1],
        scriptMedianMs: [...scripts.slice(1)].sort((a, b) => a - b)[Math.floor(warm.length / 2)],
        withinTarget: Math.max(...opens) < TARGET_MS,
        errors,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(
    `${JSON.stringify({ bench: "report-open", targetMs: TARGET_MS, runs, results }, null, 2)}\n`,
  );
}

await main();
