import cytoscape from "cytoscape";
import cytoscapeDagre from "cytoscape-dagre";
import type { ReportInput } from "./report-data.js";

/** A node of the drawn network: a compute node (`pos`), or a graph input/output (`io`, index into inputs/outputs). */
export interface GraphNodeElement {
  id: string;
  kind: "op" | "input" | "output";
  /** Text inside the node: the operator, or the tensor name for inputs/outputs. */
  label: string;
  pos?: number;
  io?: number;
  /** Stage index (compute nodes), -1 for inputs/outputs. */
  stage: number;
  /** Centre, px in layout coordinates, and size, px. */
  x: number;
  y: number;
  w: number;
  h: number;
}

/** An activation edge; `cut` when it is sent over a link. `cpw`/`cpd` route it along dagre's path. */
export interface GraphEdgeElement {
  id: string;
  source: string;
  target: string;
  tensor: string;
  bytes: number;
  cut: boolean;
  /** Control point weights and distances (cytoscape's unbundled-bezier), empty for a straight edge. */
  cpw: number[];
  cpd: number[];
}

/** The network laid out top to bottom. */
export interface GraphLayout {
  nodes: GraphNodeElement[];
  edges: GraphEdgeElement[];
}

const OP_SIZE = { w: 84, h: 24 };
const IO_SIZE = { w: 110, h: 24 };

let registered = false;

/**
 * Lays the report's network out top to bottom with dagre (through cytoscape-dagre on a headless cytoscape),
 * at generation time so the page opens without running the layout. Branches keep the partition order as
 * the tie-breaker. Edges carry dagre's routes as control points.
 */
export function layoutReportGraph(input: ReportInput): GraphLayout {
  if (!registered) {
    cytoscape.use(cytoscapeDagre);
    registered = true;
  }
  const nodes: GraphNodeElement[] = [];
  const edges: GraphEdgeElement[] = [];
  const S = input.stages.length;
  for (const n of input.nodes) {
    nodes.push({
      id: `n${n.position}`,
      kind: "op",
      label: n.op,
      pos: n.position,
      stage: n.stage,
      x: 0,
      y: 0,
      ...OP_SIZE,
    });
  }
  const inputSent = input.links.some((l) => l.fromStage === -1);
  input.inputs.forEach((t, i) => {
    nodes.push({ id: `in${i}`, kind: "input", label: t.name, io: i, stage: -1, x: 0, y: 0, ...IO_SIZE });
    for (const p of t.nodes ?? []) {
      // The input is sent when it lives on another device than the stage reading it.
      const cut = input.nodes[p].stage !== 0 || inputSent;
      edges.push({
        id: `ein${i}_${p}`,
        source: `in${i}`,
        target: `n${p}`,
        tensor: t.name,
        bytes: t.bytes,
        cut,
        cpw: [],
        cpd: [],
      });
    }
  });
  const outputSent = input.links.some((l) => l.toStage === S);
  input.outputs.forEach((t, i) => {
    nodes.push({ id: `out${i}`, kind: "output", label: t.name, io: i, stage: -1, x: 0, y: 0, ...IO_SIZE });
    const p = t.nodes?.[0] ?? 0;
    const cut = input.nodes[p].stage !== S - 1 || outputSent;
    edges.push({
      id: `eout${i}`,
      source: `n${p}`,
      target: `out${i}`,
      tensor: t.name,
      bytes: t.bytes,
      cut,
      cpw: [],
      cpd: [],
    });
  });
  input.edges.forEach((e, k) => {
    edges.push({
      id: `e${k}`,
      source: `n${e.from}`,
      target: `n${e.to}`,
      tensor: e.tensor,
      bytes: e.bytes,
      cut: e.cut,
      cpw: [],
      cpd: [],
    });
  });

  const cy = cytoscape({
    headless: true,
    styleEnabled: true,
    elements: [
      ...nodes.map((n) => ({
        group: "nodes" as const,
        data: { id: n.id, order: n.pos ?? -1, w: n.w, h: n.h },
      })),
      ...edges.map((e) => ({
        group: "edges" as const,
        data: { id: e.id, source: e.source, target: e.target },
      })),
    ],
    style: [{ selector: "node", style: { width: "data(w)", height: "data(h)", shape: "round-rectangle" } }],
  });
  cy.layout({
    name: "dagre",
    rankDir: "TB",
    nodeSep: 16,
    rankSep: 22,
    edgeSep: 6,
    fit: false,
    animate: false,
    useDagreEdgeControlPoints: true,
    sort: (a: cytoscape.SingularElementArgument, b: cytoscape.SingularElementArgument) =>
      (a.data("order") ?? -1) - (b.data("order") ?? -1),
  } as cytoscape.LayoutOptions).run();
  const round = (v: number) => Math.round(v * 10) / 10;
  for (const n of nodes) {
    const p = cy.getElementById(n.id).position();
    n.x = round(p.x);
    n.y = round(p.y);
  }
  for (const e of edges) {
    const s = cy.getElementById(e.id).scratch() as {
      controlPointWeights?: number[];
      controlPointDistances?: number[];
    };
    e.cpw = (s.controlPointWeights ?? []).map((v) => Math.round(v * 1e4) / 1e4);
    e.cpd = (s.controlPointDistances ?? []).map(round);
  }
  cy.destroy();
  return { nodes, edges };
}
