import { reportAssets } from "./report-assets.js";
import type { ReportInput } from "./report-data.js";
import { renderEncodingsSection } from "./report-encodings.js";
import { layoutReportGraph } from "./report-graph.js";
import { renderParallelSection } from "./report-parallel.js";

/** Escapes text for an HTML text node or attribute. */
function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

/** A script's code made safe inside an inline <script> element (no early close, no source-map fetch). */
function inlineScript(code: string): string {
  return code.replace(/\/\/# sourceMappingURL=\S+\s*$/gm, "").replace(/<\/(script)/gi, "<\\/$1");
}

/**
 * The report as one self-contained HTML page: the data as embedded JSON, the libraries and the page's own
 * scripts and styles inlined, nothing fetched; the network is laid out here, not in the browser. The page
 * renders itself in the browser and sets
 * `<html data-ready="true">` once the graph is laid out and every chart drawn.
 */
export function renderReportHtml(input: ReportInput): string {
  const assets = reportAssets();
  // "<" is escaped so no string in the data can close the script element.
  const json = JSON.stringify(input).replace(/</g, "\\u003c");
  const graph = JSON.stringify(layoutReportGraph(input)).replace(/</g, "\\u003c");
  const libs = assets.libraries
    .map((l) => `<script data-lib="${esc(l.name)}@${esc(l.version)}">\n${inlineScript(l.code)}\n</script>`)
    .join("\n");
  const scripts = assets.scripts
    .map((s) => `<script data-src="${esc(s.name)}">\n${inlineScript(s.code)}\n</script>`)
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${esc(input.generator)}">
<title>${esc(input.title)} · cleave report</title>
<style>
${assets.style}
</style>
</head>
<body>
<header class="top">
  <div class="brand">cleave · split-inference report</div>
  <h1 id="title">${esc(input.title)}</h1>
  <div class="sub" id="subtitle"></div>
  <div class="kpis" id="kpis"></div>
</header>
<nav class="toc">
  <a href="#sec-graph">Network</a><a href="#sec-layers">Per-layer cost</a><a href="#sec-timeline">Pipeline</a>
  <a href="#sec-pareto">Trade-offs</a><a href="#sec-memory">Memory</a><a href="#sec-stages">Stages</a>
  <a href="#sec-baselines">Baselines</a>${input.encodings ? `<a href="#sec-encodings">Compressed cuts</a>` : ""}
</nav>
<main>
  <ul class="notes" id="notes"></ul>
  <section class="card" id="sec-graph">
    <h2>Network</h2>
    <p class="lede">The stages and the tensors sent between them, with their size. Click a stage or a cut (or Layers) to open the layers there: nodes in partition order, coloured by stage, dashed edges sent between devices. Scroll to zoom, drag to pan, hover a node for its details.</p>
    <div class="legend" id="graph-legend"></div>
    <div class="graph-wrap">
      <div class="graph-view" id="graph-view" data-view="stages"><div id="cy-stages"></div><div id="cy"></div><div class="graph-tools"><button id="graph-stages" title="one box per stage, with the cut tensors">Stages</button><button id="graph-layers" title="every layer, opened on the cut">Layers</button><button id="graph-in" title="zoom in">+</button><button id="graph-out" title="zoom out">−</button><button id="graph-top">Top</button><button id="graph-fit">Fit all</button></div></div>
      <aside class="details" id="node-panel"><p class="hint">Hover a node to see its operator, output shape, MACs and predicted latency on its device.</p></aside>
    </div>
  </section>
  <section class="card" id="sec-layers">
    <h2>Per-layer cost along the partition order</h2>
    <p class="lede">Predicted latency of each node on every device, its MACs, and the bytes that would cross a cut at each boundary; shaded bands are the stages, dashed lines the chosen cuts.</p>
    <div class="chart h-360" style="height:460px"><canvas id="chart-layers"></canvas></div>
  </section>
  <section class="card" id="sec-timeline">
    <h2>Pipeline timeline</h2>
    <p class="lede" id="timeline-lede"></p>
    <div class="chart h-240"><canvas id="chart-timeline"></canvas></div>
  </section>
  ${input.parallel ? renderParallelSection(input.parallel) : ""}
  <div class="row">
    <section class="card" id="sec-pareto">
      <h2>Trade-offs</h2>
      <p class="lede">Latency against throughput of the planner's options, the plan (star) and the baselines; colour is energy per request.</p>
      <div class="chart h-360"><canvas id="chart-pareto"></canvas></div>
      <div class="colorbar" id="pareto-colorbar"></div>
    </section>
    <section class="card" id="sec-memory">
      <h2>Memory per device</h2>
      <p class="lede">Predicted peak memory of the stages on each device (weights, live activations and runtime) against its capacity.</p>
      <div class="chart h-200"><canvas id="chart-memory"></canvas></div>
    </section>
  </div>
  <section class="card" id="sec-stages">
    <h2>Stages</h2>
    <table class="data" id="stage-table"></table>
    <p class="lede" id="stage-foot" style="margin-top:8px"></p>
  </section>
  ${input.encodings ? renderEncodingsSection(input.encodings) : ""}
  <section class="card" id="sec-baselines">
    <h2>Baselines</h2>
    <p class="lede">Gains are the plan's: above 1x (green) the plan is better, below (orange) the baseline is.</p>
    <table class="data" id="baseline-table"></table>
  </section>
</main>
<footer id="generator"></footer>
<div class="tooltip" id="tooltip"></div>
<script type="application/json" id="report-data">${json}</script>
<script type="application/json" id="report-graph">${graph}</script>
${libs}
${scripts}
</body>
</html>
`;
}
