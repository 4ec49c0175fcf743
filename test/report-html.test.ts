import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { fmtBytes } from "../src/cli/format.js";
import type { Cluster } from "../src/cluster/types.js";
import { costModelFor } from "../src/cost/cost-factory.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { makePlan } from "../src/partition/planner.js";
import type { BenchInput, ReportInput } from "../src/report/report-data.js";
import { renderReportHtml } from "../src/report/report-html.js";
import { reportInputFrom } from "../src/report/report-input.js";
import { fmtRatio } from "../src/harness/bench-figures.js";
import { buildZooModel } from "../src/zoo/index.js";
import { launchBrowser } from "./helpers/browser.js";

const CLUSTER: Cluster = {
  name: "two-boards",
  devices: [
    {
      name: "jetson",
      kind: "gpu",
      macsPerSecond: { float32: 200e9 },
      memoryBandwidth: 25e9,
      memory: 512 * 2 ** 20,
      idlePower: 2,
      activePower: 10,
    },
    {
      name: "pi5",
      kind: "cpu",
      macsPerSecond: { float32: 90e9 },
      memoryBandwidth: 8e9,
      memory: 256 * 2 ** 20,
      idlePower: 1,
      activePower: 5,
    },
  ],
  links: [
    { devices: ["jetson", "pi5"], kind: "ethernet", bandwidth: 125e6, latency: 2e-4, energyPerBit: 5e-9 },
  ],
  inputDevice: "pi5",
  outputDevice: "pi5",
};

/**
 * The plan `cleave plan --pareto` makes of a zoo model on CLUSTER (exact planner, baselines, Pareto front),
 * made into the report's data as `cleave report` does, with bench figures derived from the plan's own.
 */
async function plannedReport(zoo: string, bench = false): Promise<ReportInput> {
  const model = await analyzeModel(buildZooModel(zoo), { source: zoo });
  const cost = costModelFor(model, CLUSTER);
  const { plan } = makePlan({
    model,
    modelPath: `zoo:${zoo}`,
    cluster: CLUSTER,
    cost,
    objective: "throughput",
    pareto: true,
    // A pipeline, so every per-stage section has stages to show (replica groups: the test below).
    replicas: false,
  });
  const single = plan.baselines.find((b) => b.singleDevice !== undefined && b.feasible)!;
  const benchInput: BenchInput = {
    configurations: [
      {
        name: "plan",
        throughput: plan.totals.throughput * 0.9,
        latencyMs: { p50: plan.totals.latency * 2100, p95: plan.totals.latency * 2300 },
        aloneLatencyMs: { p50: plan.totals.latency * 1100 },
        stages: plan.stages.map((s) => ({ computeMs: s.latency * 1100, transferMs: 0.4 })),
        inputTransferMs: 0.2,
      },
      {
        name: single.name,
        throughput: single.totals.throughput * 0.95,
        latencyMs: { p50: (single.totals.latency ?? 0) * 1050 },
      },
    ],
    speedup: (plan.totals.throughput * 0.9) / (single.totals.throughput * 0.95),
    findings: ["baseline x measured 1.10x the plan's throughput: likely reason: a test"],
  };
  return reportInputFrom({ model, plan, cluster: CLUSTER, bench: bench ? benchInput : undefined, name: zoo });
}

/** The parts of the page's objects (cytoscape core, Chart.js charts) the test reads. */
interface CyElement {
  data(key: string): unknown;
  renderedPosition(): { x: number; y: number };
}
interface CyCollection {
  length: number;
  filter(f: (e: CyElement) => boolean): CyCollection;
  map<T>(f: (e: CyElement) => T): T[];
}
interface CyCore {
  nodes(selector?: string): CyCollection;
  edges(): CyCollection;
  getElementById(id: string): CyElement & { position(): { x: number; y: number } };
  zoom(level: number): void;
  center(e: CyElement): void;
  extent(): { x1: number; x2: number; y1: number; y2: number };
}
interface ChartLike {
  data: { labels?: unknown[]; datasets: Array<{ label?: string; data: unknown[] }> };
  options: { plugins?: { annotation?: { annotations: Record<string, { label?: { content?: string } }> } } };
}
type PageWindow = { CleaveReport: { cy: CyCore; cyStages: CyCore; charts: Record<string, ChartLike> } };

/** The report's own formats, to find the plan's numbers on the page. */
const ms3 = (s: number) => `${(s * 1e3).toPrecision(3)} ms`;
const rate3 = (r: number) => `${r.toPrecision(3)}/s`;

test("report: every section renders the plan's numbers in headless Chromium, hover shows node details", async (t) => {
  const input = await plannedReport("resnet18", true);
  assert.ok(input.stages.length >= 2, "the plan splits the model");
  const dir = mkdtempSync(join(tmpdir(), "cleave-report-"));
  const file = join(dir, "report.html");
  writeFileSync(file, renderReportHtml(input));
  const browser = await launchBrowser(join(dir, "profile"));
  const problems: string[] = [];
  const external: string[] = [];
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
    page.on("request", (r) => {
      if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) external.push(r.url());
    });
    // A script error stops the page before it is ready: fail with it rather than with a time-out.
    const crashed = new Promise<never>((_, reject) =>
      page.on("pageerror", (e) => reject(new Error(`page error before it was ready: ${e.message}`))),
    );
    crashed.catch(() => {});
    await page.goto(pathToFileURL(file).href);
    await Promise.race([page.waitForSelector("html[data-ready=true]", { timeout: 30_000 }), crashed]);

    // Header: the plan's predicted and measured figures, and the speed-up over the best single device.
    const kpi = async (k: string) => (await page.locator(`[data-kpi="${k}"]`).textContent()) ?? "";
    // Latency: the prediction (one request alone) beside requests measured alone, not the loaded p50.
    assert.match(await kpi("latency"), new RegExp(ms3(input.plan.latency)));
    assert.match(
      await kpi("latency"),
      new RegExp(`measured alone p50 ${ms3(input.plan.latency * 1.1)} \\(prediction -9\\.1%\\)`),
    );
    assert.match(await kpi("latency"), new RegExp(`pipeline full p50 ${ms3(input.plan.latency * 2.1)}`));
    assert.match(await kpi("throughput"), new RegExp(rate3(input.plan.throughput).replace("/", "\\/")));
    // Prediction errors as the terminal prints them: (predicted - measured) / measured.
    assert.match(await kpi("throughput"), /measured pipelined .* \(prediction \+11\.1%\)/);
    const best = input.baselines
      .filter((b) => b.feasible && b.singleDevice !== undefined)
      .sort((a, b) => b.throughput - a.throughput)[0];
    assert.match(
      await kpi("speedup"),
      new RegExp(`${(input.plan.throughput / best.throughput).toFixed(2)}x`),
    );
    assert.match(await kpi("speedup"), new RegExp(best.singleDevice!));
    // The measured speed-up is the bench's own figure, formatted as the terminal formats it.
    assert.match(await kpi("speedup"), new RegExp(`measured ${fmtRatio(input.bench!.speedup!)}`));
    assert.match((await page.locator("#notes li.finding").textContent()) ?? "", /likely reason: a test/);

    // Graph: it opens on the condensed view, one box per stage with the cut tensors between them.
    const condensed = await page.evaluate(() => {
      const R = (window as unknown as PageWindow).CleaveReport;
      return {
        view: document.getElementById("graph-view")!.dataset.view,
        stages: R.cyStages.nodes('[kind = "stage"]').length,
        cuts: R.cyStages
          .edges()
          .filter((e) => e.data("cut") === true)
          .map((e) => e.data("label") as string),
      };
    });
    assert.equal(condensed.view, "stages");
    assert.equal(condensed.stages, input.stages.length);
    const cutBytes = new Map<string, number>();
    for (const e of input.edges.filter((x) => x.cut)) cutBytes.set(e.tensor, e.bytes);
    assert.ok(condensed.cuts.length >= input.stages.length - 1, `cut edges: ${condensed.cuts.join(", ")}`);
    assert.ok(
      condensed.cuts.some((l) => l.endsWith(fmtBytes([...cutBytes.values()].reduce((a, b) => a + b, 0)))),
      `a cut edge carries the cut's bytes: ${condensed.cuts.join(", ")}`,
    );
    // Layers opens on the cut: the nodes at both ends of a cut edge are in view.
    await page.locator("#graph-layers").click();
    const inView = await page.evaluate(() => {
      const R = (window as unknown as PageWindow).CleaveReport;
      const cy = R.cy;
      const ext = cy.extent();
      const d = (R as unknown as { data: ReportInput }).data;
      const cut = d.edges.filter((e) => e.cut && d.nodes[e.to].stage === 1);
      return cut.map((e) =>
        [e.from, e.to].every((p) => {
          const q = cy.getElementById(`n${p}`).position();
          return q.x >= ext.x1 && q.x <= ext.x2 && q.y >= ext.y1 && q.y <= ext.y2;
        }),
      );
    });
    assert.ok(inView.length > 0 && inView.every(Boolean), `the first cut is in view: ${inView.join(", ")}`);

    // Graph: every compute node, input and output drawn; cut edges labelled with their sizes.
    const graph = await page.evaluate(() => {
      const cy = (window as unknown as PageWindow).CleaveReport.cy;
      return {
        nodes: cy.nodes().length,
        cutLabels: cy
          .edges()
          .filter((e) => e.data("cut") === true)
          .map((e) => e.data("label") as string),
        colors: [...new Set(cy.nodes('[kind = "op"]').map((n) => n.data("color") as string))].length,
      };
    });
    assert.equal(graph.nodes, input.nodes.length + input.inputs.length + input.outputs.length);
    const cutEdges = input.edges.filter((e) => e.cut);
    assert.ok(cutEdges.length > 0, "the plan cuts some edge");
    for (const e of cutEdges) {
      assert.ok(
        graph.cutLabels.includes(fmtBytes(e.bytes)),
        `cut edge ${e.tensor} (${fmtBytes(e.bytes)}) is labelled with its size; labels: ${graph.cutLabels.join(", ")}`,
      );
    }
    assert.equal(graph.colors, input.stages.length, "one colour per stage");

    // Hover a node of the second stage: tooltip and side panel show op, shape, MACs and predicted latency.
    const target =
      input.nodes.find((n) => n.stage === 1 && n.op === "Conv") ?? input.nodes[input.stages[1].start];
    // Scroll first and let two frames pass: cytoscape caches the container's page offset and
    // refreshes it on the scroll event, so a pointer moved before that event hits a stale position.
    const box = (await page.locator("#cy").boundingBox())!;
    await page.locator("#cy").scrollIntoViewIfNeeded();
    const twoFrames = () =>
      page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await twoFrames();
    const where = await page.evaluate((pos) => {
      const cy = (window as unknown as PageWindow).CleaveReport.cy;
      const node = cy.getElementById(`n${pos}`);
      cy.zoom(1.5);
      cy.center(node);
      return node.renderedPosition();
    }, target.position);
    await twoFrames();
    const box2 = (await page.locator("#cy").boundingBox())!;
    await page.mouse.move(box2.x + where.x, box2.y + where.y);
    await page.locator("#tooltip").waitFor({ state: "visible", timeout: 5000 });
    const tip = (await page.locator("#tooltip").textContent()) ?? "";
    const panel = (await page.locator("#node-panel").textContent()) ?? "";
    const dev = input.devices.findIndex((d) => d.name === input.stages[1].device);
    for (const text of [tip, panel]) {
      assert.match(text, new RegExp(target.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      assert.match(text, new RegExp(target.op));
      assert.match(text, new RegExp(target.outputs[0].shape.join("×")));
      assert.match(text, new RegExp(input.stages[1].device));
    }
    const lat = target.latency[dev];
    const latText = lat < 1e-3 ? `${(lat * 1e6).toPrecision(3)} µs` : ms3(lat);
    assert.match(panel, new RegExp(latText));
    assert.ok(box.width > 300 && box.height > 300, "graph area is sized");

    // Per-layer chart: one latency line per device, MACs per node, bytes per boundary, the chosen cut marked.
    const layers = await page.evaluate(() => {
      const R = (window as unknown as PageWindow).CleaveReport;
      const c = R.charts.layers;
      const ann = c.options.plugins?.annotation?.annotations ?? {};
      return {
        datasets: c.data.datasets.map((d) => ({ label: d.label, points: d.data.length })),
        cutLabels: Object.entries(ann)
          .filter(([k]) => /^cut\d+$/.test(k))
          .map(([, a]) => a.label?.content ?? ""),
      };
    });
    for (const d of input.devices) {
      assert.ok(
        layers.datasets.some((s) => s.label === `latency on ${d.name}` && s.points === input.nodes.length),
      );
    }
    assert.ok(layers.datasets.some((s) => s.label === "MACs" && s.points === input.nodes.length));
    assert.ok(layers.datasets.some((s) => s.label === "bytes crossing the boundary"));
    assert.deepEqual(
      layers.cutLabels,
      input.stages.slice(1).map((st, k) => `cut ${k + 1}: ${fmtBytes(input.boundaryBytes[st.start])}`),
    );

    // Timeline: predicted bars of 4 requests per step, and measured ones from the bench.
    const timeline = await page.evaluate(() => {
      const R = (window as unknown as PageWindow).CleaveReport;
      const c = R.charts.timeline;
      return {
        lanes: c.data.labels as string[],
        sets: c.data.datasets.map((d) => ({ label: d.label, bars: d.data as Array<{ x: number[] }> })),
      };
    });
    const steps = input.timeline.predicted.steps;
    assert.equal(timeline.sets[0].label, "predicted");
    assert.equal(timeline.sets[0].bars.length, steps.length * 4);
    assert.equal(timeline.sets[1]?.label, "measured");
    const s1 = steps.findIndex((s) => s.kind === "compute" && s.stage === 0);
    const bar = timeline.sets[0].bars[s1];
    assert.ok(
      Math.abs(bar.x[1] - bar.x[0] - input.stages[0].latency * 1e3) < 1e-6,
      "stage 1 bar is its latency",
    );
    assert.ok(timeline.lanes.some((l) => l.includes(`S2 · ${input.stages[1].device}`)));

    // Pareto: the chosen plan (star) and every baseline plotted at their latency/throughput.
    const pareto = await page.evaluate(() => {
      const R = (window as unknown as PageWindow).CleaveReport;
      return R.charts.pareto.data.datasets.map((d) => ({
        label: d.label,
        points: (d.data as Array<{ x: number; y: number }>).map((p) => [p.x, p.y]),
      }));
    });
    const star = pareto.find((d) => d.label === "plan (chosen)")!;
    assert.deepEqual(star.points, [[input.plan.latency * 1e3, input.plan.throughput]]);
    for (const b of input.baselines) {
      const ds = pareto.find((d) => d.label === b.name);
      assert.ok(ds, `baseline ${b.name} on the Pareto chart`);
      assert.deepEqual(ds.points, [[b.latency * 1e3, b.throughput]]);
    }

    // Memory: each stage's memory on its device, capacity as the full bar.
    const memory = await page.evaluate(() => {
      const R = (window as unknown as PageWindow).CleaveReport;
      return R.charts.memory.data.datasets.map((d) => ({ label: d.label, data: d.data as number[] }));
    });
    input.stages.forEach((s, i) => {
      const d = input.devices.findIndex((x) => x.name === s.device);
      assert.equal(memory[i].data[d], s.memory);
    });

    // Tables: one row per stage with its device and predicted time; baselines with ratios against the plan.
    const stageRows = await page.locator("#stage-table tbody tr").allTextContents();
    assert.equal(stageRows.length, input.stages.length);
    input.stages.forEach((s, i) => {
      assert.match(stageRows[i], new RegExp(s.device));
      assert.match(stageRows[i], new RegExp(ms3(s.latency)));
    });
    const baseRows = await page.locator("#baseline-table tbody tr").allTextContents();
    assert.equal(baseRows.length, input.baselines.length + 1);
    input.baselines.forEach((b, i) => {
      assert.match(baseRows[i + 1], new RegExp(b.name));
      assert.match(baseRows[i + 1], new RegExp(`${(b.latency / input.plan.latency).toFixed(2)}x`));
      assert.match(baseRows[i + 1], new RegExp(`${(input.plan.throughput / b.throughput).toFixed(2)}x`));
    });

    // Every chart canvas has been drawn on (non-blank pixels).
    const inked = await page.evaluate(() =>
      ["chart-layers", "chart-timeline", "chart-pareto", "chart-memory"].map((id) => {
        const c = document.getElementById(id) as HTMLCanvasElement;
        const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return [id, n] as const;
      }),
    );
    for (const [id, n] of inked) assert.ok(n > 1000, `${id} is drawn (${n} pixels)`);

    const shot = join(dir, "report.png");
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(problems, [], "the page logs no errors or warnings");
    assert.deepEqual(external, [], "the page fetches nothing from the network");
  } finally {
    await browser.close();
    if (process.env.CLEAVE_KEEP_REPORT === undefined)
      rmSync(join(dir, "profile"), { recursive: true, force: true });
  }
});

test("report data: a replicated stage carries its group and each replica's share", async () => {
  const zoo = "squeezenet1_1";
  const model = await analyzeModel(buildZooModel(zoo), { source: zoo });
  const { plan } = makePlan({
    model,
    modelPath: `zoo:${zoo}`,
    cluster: CLUSTER,
    cost: costModelFor(model, CLUSTER),
    objective: "throughput",
  });
  const replicated = plan.stages.filter((s) => s.replicas);
  assert.ok(replicated.length > 0, "two devices and a fast link: the plan replicates a stage");
  const input = reportInputFrom({ model, plan, cluster: CLUSTER, name: zoo });
  for (const s of replicated) {
    const shown = input.stages[s.index].replicas;
    assert.deepEqual(
      shown?.map((r) => r.device),
      s.replicas?.map((r) => r.device),
    );
    assert.ok(Math.abs((shown ?? []).reduce((a, r) => a + r.share, 0) - 1) < 1e-9, "shares sum to 1");
  }
});
