import type { Plan } from "../partition/plan.js";

/** One request of a tiled or branch plan as lanes per device: each stage's predicted start and finish, s. */
export interface ParallelLanes {
  devices: string[];
  latency: number;
  bars: Array<{
    stage: number;
    device: string;
    start: number;
    finish: number;
    kind: "tile" | "branch" | "stage";
  }>;
}

/**
 * The per-request timeline of a plan with `tiles` (tile stacks or branch regions): a stage holding row-tile
 * copies is a tile; a stage that overlaps in time a stage on another device without being a tile is a branch.
 */
export function parallelLanes(plan: Plan): ParallelLanes | undefined {
  const tl = plan.tiles?.timeline;
  if (!tl || tl.length !== plan.stages.length) return undefined;
  const devices = [...new Set(plan.stages.map((s) => s.device))];
  const bars = plan.stages.map((s, k) => {
    const tile = s.nodes.some((n) => /\.tile\d+$/.test(n));
    const overlaps = plan.stages.some(
      (o, j) => j !== k && o.device !== s.device && tl[j].start < tl[k].finish && tl[k].start < tl[j].finish,
    );
    const kind: "tile" | "branch" | "stage" = tile ? "tile" : overlaps ? "branch" : "stage";
    return { stage: k, device: s.device, start: tl[k].start, finish: tl[k].finish, kind };
  });
  return { devices, latency: plan.totals.latency, bars };
}

const COLOURS = { tile: "#2b7bb9", branch: "#e08a1e", stage: "#9aa5b1" } as const;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The report's section drawing {@link ParallelLanes} as an inline SVG (no script needed). */
export function renderParallelSection(lanes: ParallelLanes): string {
  const W = 960;
  const left = 90;
  const lane = 34;
  const H = 30 + lane * lanes.devices.length;
  const end = Math.max(lanes.latency, ...lanes.bars.map((b) => b.finish)) || 1;
  const x = (t: number) => left + ((W - left - 10) * t) / end;
  const rows = lanes.devices
    .map(
      (d, i) =>
        `<text x="4" y="${20 + i * lane + 20}" font-size="12">${esc(d)}</text>` +
        `<line x1="${left}" x2="${W - 10}" y1="${20 + i * lane + lane - 2}" y2="${20 + i * lane + lane - 2}" stroke="#ddd"/>`,
    )
    .join("");
  const bars = lanes.bars
    .map((b) => {
      const i = lanes.devices.indexOf(b.device);
      const w = Math.max(1, x(b.finish) - x(b.start));
      return `<rect class="lane-bar" data-kind="${b.kind}" data-stage="${b.stage}" x="${x(b.start).toFixed(1)}" y="${20 + i * lane + 4}" width="${w.toFixed(1)}" height="${lane - 10}" fill="${COLOURS[b.kind]}"><title>stage ${b.stage} (${b.kind}) on ${esc(b.device)}: ${(b.start * 1000).toFixed(2)}-${(b.finish * 1000).toFixed(2)} ms</title></rect>`;
    })
    .join("");
  const axis = `<text x="${left}" y="14" font-size="11">0</text><text x="${W - 60}" y="14" font-size="11">${(end * 1000).toFixed(2)} ms</text>`;
  const legend = (["tile", "branch", "stage"] as const)
    .map((k) => `<span style="color:${COLOURS[k]}">■</span> ${k}`)
    .join(" &nbsp; ");
  return `<section class="card" id="sec-lanes">
    <h2>One request, lanes per device</h2>
    <p class="lede">Predicted start and finish of every stage for one request: row tiles and independent branches on different devices run side by side. ${legend}</p>
    <svg id="lanes" xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 ${W} ${H}" role="img">${axis}${rows}${bars}</svg>
  </section>`;
}
