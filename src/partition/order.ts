import type { AnalyzedModel } from "../ir/analyze.js";
import { type Graph, type TensorType, typeBytes } from "../ir/graph.js";

/**
 * The partition order: the compute nodes of a graph (every node but `Constant`, whose outputs are weights
 * and are copied into each stage that reads them) in a topological order. Cuts are boundaries in it.
 */
export interface PartitionOrder {
  /** Graph node indices (into `graph.nodes`) in partition order. */
  readonly nodes: readonly number[];
  /** Position in `nodes` of each graph node, -1 for Constant nodes. */
  readonly position: Int32Array;
  /** Which strategy produced it. */
  readonly strategy: OrderStrategy;
}

/**
 * Ways to order nodes: the file's own (stable) order; depth-first (finish a branch before starting the next);
 * or least-live (greedily run the ready node that leaves the fewest activation bytes alive).
 */
export type OrderStrategy = "file" | "depth-first" | "least-live";

const STRATEGIES: readonly OrderStrategy[] = ["depth-first", "least-live", "file"];

/** A partition order built with one strategy; least-live needs tensor types to know bytes. */
export function orderWith(
  graph: Graph,
  strategy: OrderStrategy,
  types?: ReadonlyMap<string, TensorType>,
): PartitionOrder {
  const nodes =
    strategy === "file"
      ? fileOrder(graph)
      : strategy === "depth-first"
        ? depthFirstOrder(graph)
        : leastLiveOrder(graph, types);
  const position = new Int32Array(graph.nodes.length).fill(-1);
  nodes.forEach((n, i) => {
    position[n] = i;
  });
  return { nodes, position, strategy };
}

/**
 * The partition order for a model: each strategy is tried and the one whose cuts carry the fewest bytes in
 * total wins (ties go to depth-first, then least-live). Trying them all costs milliseconds.
 */
export function choosePartitionOrder(model: AnalyzedModel): PartitionOrder {
  let best: PartitionOrder | undefined;
  let bestBytes = Number.POSITIVE_INFINITY;
  for (const s of STRATEGIES) {
    const o = orderWith(model.graph, s, model.types);
    const total = crossingBytesTotal(model, o);
    if (total < bestBytes) {
      best = o;
      bestBytes = total;
    }
  }
  return best!;
}

function fileOrder(graph: Graph): number[] {
  return graph.nodes.filter((n) => !n.isConstant).map((n) => n.index);
}

/**
 * Depth-first list scheduling: among ready nodes, run the one whose latest input was produced most recently,
 * so a branch is followed to its end (its join) before a sibling branch starts. This keeps the branches of an
 * Inception or residual block together, so a cut inside a branch carries that branch's tensor plus the
 * block's input, instead of one tensor per interleaved branch.
 */
function depthFirstOrder(graph: Graph): number[] {
  const n = graph.nodes.length;
  const { pending, users } = computeDeps(graph);
  // Ready nodes are kept on a stack: the last made ready is run first (depth-first). Nodes ready at the
  // start are pushed in reverse file order so the first in the file runs first.
  const stack: number[] = [];
  for (let i = n - 1; i >= 0; i--) if (!graph.nodes[i].isConstant && pending[i] === 0) stack.push(i);
  const order: number[] = [];
  while (stack.length > 0) {
    const i = stack.pop()!;
    order.push(i);
    const ready = users[i].filter((u) => --pending[u] === 0);
    // Push later users first so the earliest (in file order) is continued first.
    ready.sort((a, b) => b - a);
    stack.push(...ready);
  }
  return order;
}

/** Compute-node dependencies: for each node, the compute nodes it reads from, and their users. */
function computeDeps(graph: Graph): { pending: Int32Array; users: number[][] } {
  const n = graph.nodes.length;
  const pending = new Int32Array(n);
  const users: number[][] = Array.from({ length: n }, () => []);
  for (const node of graph.nodes) {
    if (node.isConstant) continue;
    const deps = new Set<number>();
    for (const name of [...node.inputs, ...node.implicitInputs]) {
      const p = name === "" ? undefined : graph.values.get(name)?.producer;
      if (p && !p.isConstant) deps.add(p.index);
    }
    pending[node.index] = deps.size;
    for (const d of deps) users[d].push(node.index);
  }
  return { pending, users };
}

/**
 * Least-live list scheduling: among ready nodes, run the one whose outputs add the fewest bytes net of the
 * inputs it is the last to read (those die with it); ties go to the most recently readied node (depth-first).
 * O(nodes x ready nodes), fine for graphs of thousands of nodes.
 */
function leastLiveOrder(graph: Graph, types: ReadonlyMap<string, TensorType> | undefined): number[] {
  const { pending, users } = computeDeps(graph);
  const readersLeft = new Map<string, number>();
  for (const v of graph.values.values()) {
    if (v.kind === "initializer" || v.producer?.isConstant) continue;
    readersLeft.set(v.name, v.consumers.filter((c) => !c.isConstant).length);
  }
  const bytes = (name: string) => typeBytes(types?.get(name));
  const reads = (i: number) => {
    const node = graph.nodes[i];
    return [...new Set([...node.inputs, ...node.implicitInputs])].filter(
      (x) => x !== "" && readersLeft.has(x),
    );
  };
  const delta = (i: number) => {
    let d = 0;
    for (const o of graph.nodes[i].outputs) if (o !== "") d += bytes(o);
    for (const x of reads(i)) if (readersLeft.get(x) === 1 && !graph.values.get(x)!.isOutput) d -= bytes(x);
    return d;
  };
  const ready: number[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--)
    if (!graph.nodes[i].isConstant && pending[i] === 0) ready.push(i);
  const order: number[] = [];
  while (ready.length > 0) {
    let pick = ready.length - 1;
    let best = delta(ready[pick]);
    for (let k = ready.length - 2; k >= 0; k--) {
      const d = delta(ready[k]);
      if (d < best) {
        best = d;
        pick = k;
      }
    }
    const i = ready.splice(pick, 1)[0];
    order.push(i);
    for (const x of reads(i)) readersLeft.set(x, readersLeft.get(x)! - 1);
    const now = users[i].filter((u) => --pending[u] === 0).sort((a, b) => b - a);
    ready.push(...now);
  }
  return order;
}

/** Sum over all boundaries of the bytes crossing it (a measure of how wide an order's cuts are). */
function crossingBytesTotal(model: AnalyzedModel, order: PartitionOrder): number {
  let total = 0;
  for (const span of liveSpans(model, order)) total += span.bytes * (span.lastUse - span.def);
  return total;
}

/** A non-weight tensor's life in a partition order: produced at `def` (-1 for graph inputs), last read at `lastUse`. */
export interface LiveSpan {
  name: string;
  def: number;
  lastUse: number;
  bytes: number;
}

/**
 * Life spans of every activation (graph inputs and compute-node outputs that some compute node reads),
 * in O(nodes + edges). A tensor crosses boundary b (between positions b-1 and b) when def < b <= lastUse.
 */
export function liveSpans(model: AnalyzedModel, order: PartitionOrder): LiveSpan[] {
  const { graph, types } = model;
  const spans: LiveSpan[] = [];
  for (const v of graph.values.values()) {
    if (v.kind === "initializer" || v.producer?.isConstant) continue;
    const def = v.producer ? order.position[v.producer.index] : -1;
    let lastUse = -1;
    for (const c of v.consumers) if (!c.isConstant) lastUse = Math.max(lastUse, order.position[c.index]);
    if (lastUse > def) spans.push({ name: v.name, def, lastUse, bytes: typeBytes(types.get(v.name)) });
  }
  return spans;
}
