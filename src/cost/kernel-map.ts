import type { Graph } from "../ir/graph.js";

/** A node of the graph onnxruntime actually ran (after its fusions), from the optimized model it wrote. */
export interface OptimizedNode {
  name: string;
  op: string;
  /** Operator domain ("com.microsoft.nchwc" for blocked-layout kernels). */
  domain?: string;
  inputs: readonly string[];
  outputs: readonly string[];
}

/** What became of an original node in onnxruntime's optimized graph. */
export type NodeRole =
  /** Its own kernel ran (possibly with other nodes fused into it): the group's anchor. */
  | "kernel"
  /** Fused into another node's kernel (e.g. BatchNormalization and Relu into a Conv). */
  | "fused"
  /** Constant-folded or eliminated: nothing ran for it. */
  | "removed";

/** How kernels map back to original nodes. */
export interface KernelMapping {
  /** Per original node (indexed like `graph.nodes`): its role. */
  role: NodeRole[];
  /** Per original node: the anchor whose kernel ran it (itself for "kernel"), -1 for "removed". */
  anchorOf: Int32Array;
  /**
   * Per kernel name: the original node its time is charged to, -1 when none could be found. A kernel may be
   * charged to a node it does not cover: layout conversions (ReorderInput/ReorderOutput) and reshapes that
   * onnxruntime inserts go to the node whose data they convert.
   */
  kernelNode: Map<string, number>;
}

/** Kernels onnxruntime inserts to convert layouts or copy data; they are charged to a neighbouring node. */
const INSERTED_OPS = new Set(["ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost"]);

/** Original operators a fused kernel's operator may stand for. */
const KERNEL_OPS: Record<string, readonly string[]> = {
  FusedConv: ["Conv"],
  FusedGemm: ["Gemm", "MatMul"],
  Gemm: ["Gemm", "MatMul"],
  FusedMatMul: ["MatMul", "Gemm"],
  MatMulIntegerToFloat: ["MatMulInteger", "MatMul"],
  NhwcMaxPool: ["MaxPool"],
};

function opMatches(original: string, kernelOp: string): boolean {
  return original === kernelOp || (KERNEL_OPS[kernelOp]?.includes(original) ?? false);
}

/**
 * Fusions that absorb the nodes *before* the node a kernel is named after (the kernel's operator is not the
 * named node's): the original operators each such kernel may absorb.
 */
const PROLOGUE_OPS: Record<string, ReadonlySet<string>> = {
  QuickGelu: new Set(["Sigmoid", "Mul"]),
  Gelu: new Set(["Div", "Erf", "Add", "Mul"]),
  FastGelu: new Set(["Mul", "Add", "Tanh", "Pow", "Div"]),
  BiasGelu: new Set(["Add", "Div", "Erf", "Mul"]),
  LayerNormalization: new Set(["ReduceMean", "Sub", "Pow", "Add", "Sqrt", "Div", "Mul", "Cast"]),
  SimplifiedLayerNormalization: new Set(["Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Cast"]),
  SkipLayerNormalization: new Set(["Add", "ReduceMean", "Sub", "Pow", "Sqrt", "Div", "Mul"]),
  HardSwish: new Set(["HardSigmoid", "Mul", "Add", "Clip", "Div"]),
};

/** Operators onnxruntime removes when their input is known (static shapes, no-op at inference). */
const REMOVABLE = new Set(["Shape", "Size", "Identity", "Dropout"]);

/** How far (in nodes) to walk back from a kernel's named node to find the node whose operator it runs. */
const MAX_WALK = 8;

/**
 * Maps onnxruntime kernels back to the original nodes of `graph`. `optimized` is the graph onnxruntime wrote
 * (`optimizedModelFilePath`), whose node names are the kernel names of its profiler; `kernelOps` gives each
 * profiled kernel's operator. Original node names must be the unique names of `graph` (set on the model run).
 *
 * The rules, in order: a kernel is named after (or outputs) an original tensor or node, its *seed*; its
 * *anchor* is the nearest node at or before the seed running the kernel's operator (a Conv kernel named after
 * the Relu it absorbed anchors on the Conv), and nodes on the way are fused into it. Remaining nodes are
 * removed when their inputs are all constant (or they are Shape/Size/Identity/Dropout), fused into the kernel
 * that consumes them when that kernel is a known prologue fusion absorbing their operator (SiLU's Sigmoid in
 * QuickGelu), or else fused into the kernel of their latest producer (residual Add and Relu in a Conv's
 * epilogue).
 */
export function mapKernels(
  graph: Graph,
  optimized: readonly OptimizedNode[],
  kernelOps: ReadonlyMap<string, string>,
): KernelMapping {
  const n = graph.nodes.length;
  const byName = new Map(graph.nodes.map((nd) => [nd.name, nd.index]));
  const producerOf = (tensor: string): number => {
    const p = graph.values.get(tensor)?.producer;
    return p ? p.index : -1;
  };
  const anchorOf = new Int32Array(n).fill(-2); // -2: not decided yet
  const role: NodeRole[] = new Array<NodeRole>(n).fill("removed");
  /** Anchors whose kernel runs another operator than the anchor's (prologue fusions such as QuickGelu): its op. */
  const foreignKernel = new Map<number, string>();
  const kernelNode = new Map<string, number>();

  const optByName = new Map<string, OptimizedNode[]>();
  for (const o of optimized) {
    const list = optByName.get(o.name) ?? [];
    list.push(o);
    optByName.set(o.name, list);
  }
  const kernels = [...new Set([...kernelOps.keys(), ...optimized.map((o) => o.name)])];
  const opOf = (k: string) => kernelOps.get(k) ?? optByName.get(k)?.[0].op ?? "";

  const seedOf = (k: string): number => {
    let best = -1;
    for (const o of optByName.get(k) ?? []) for (const t of o.outputs) best = Math.max(best, producerOf(t));
    if (best >= 0) return best;
    const candidates = [k, k.replace(/_nchwc$/, ""), k.split("/")[0]];
    for (const c of candidates) {
      const idx = byName.get(c);
      if (idx !== undefined) return idx;
      const p = producerOf(c);
      if (p >= 0) return p;
    }
    return -1;
  };

  // Pass 1: kernels of original operators find their seed and anchor.
  const deferred: string[] = [];
  for (const k of kernels) {
    const op = opOf(k);
    const seed = INSERTED_OPS.has(op) ? -1 : seedOf(k);
    if (seed < 0) {
      deferred.push(k);
      continue;
    }
    const { anchor, path } = findAnchor(graph, seed, op, anchorOf);
    if (anchorOf[anchor] >= 0 && anchorOf[anchor] !== anchor) {
      // Already fused into another kernel: charge this kernel there too.
      kernelNode.set(k, anchorOf[anchor]);
      continue;
    }
    anchorOf[anchor] = anchor;
    role[anchor] = "kernel";
    if (!opMatches(graph.nodes[anchor].op, op)) foreignKernel.set(anchor, op);
    for (const p of path) {
      if (anchorOf[p] === -2) {
        anchorOf[p] = anchor;
        role[p] = "fused";
      }
    }
    kernelNode.set(k, anchor);
  }

  // Pass 2: remaining nodes are removed (constant inputs), or fused into a consumer or producer kernel.
  for (const node of graph.nodes) {
    if (anchorOf[node.index] !== -2) continue;
    const dataInputs = [...node.inputs, ...node.implicitInputs].filter((t) => t !== "" && !graph.isWeight(t));
    const allConstant = dataInputs.every((t) => {
      const p = producerOf(t);
      return p >= 0 && role[p] === "removed" && anchorOf[p] === -1;
    });
    if (node.isConstant || REMOVABLE.has(node.op) || allConstant) {
      anchorOf[node.index] = -1;
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    if (anchorOf[i] !== -2) continue;
    const groups = new Set<number>();
    for (const t of graph.nodes[i].outputs) {
      for (const c of graph.values.get(t)?.consumers ?? []) {
        if (anchorOf[c.index] !== -1) groups.add(anchorOf[c.index]);
      }
    }
    const [g] = [...groups];
    if (groups.size === 1 && g >= 0 && PROLOGUE_OPS[foreignKernel.get(g) ?? ""]?.has(graph.nodes[i].op)) {
      anchorOf[i] = g;
      role[i] = "fused";
    }
  }
  for (const node of graph.nodes) {
    if (anchorOf[node.index] !== -2) continue;
    let best = -1;
    for (const t of [...node.inputs, ...node.implicitInputs]) {
      const p = t === "" ? -1 : producerOf(t);
      if (p >= 0 && anchorOf[p] >= 0 && p > best) best = p;
    }
    if (best >= 0) {
      anchorOf[node.index] = anchorOf[best];
      role[node.index] = "fused";
    } else {
      anchorOf[node.index] = -1;
    }
  }

  // Pass 3: inserted kernels (layout conversions, reshapes around a fused Gemm) go to a neighbour.
  const optProducer = new Map<string, string>();
  const optConsumers = new Map<string, string[]>();
  for (const o of optimized) {
    for (const t of o.outputs) optProducer.set(t, o.name);
    for (const t of o.inputs) {
      const list = optConsumers.get(t) ?? [];
      list.push(o.name);
      optConsumers.set(t, list);
    }
  }
  const resolve = (k: string, seen: Set<string>): number => {
    const known = kernelNode.get(k);
    if (known !== undefined) return known;
    if (seen.has(k)) return -1;
    seen.add(k);
    for (const o of optByName.get(k) ?? []) {
      // An output that is an original tensor: charge its producer's kernel (ReorderOutput back to NCHW).
      for (const t of o.outputs) {
        const p = producerOf(t);
        if (p >= 0 && anchorOf[p] >= 0) return anchorOf[p];
      }
      for (const t of o.outputs) {
        for (const c of optConsumers.get(t) ?? []) {
          const r = resolve(c, seen);
          if (r >= 0) return r;
        }
      }
      for (const t of o.inputs) {
        const p = producerOf(t);
        if (p >= 0 && anchorOf[p] >= 0) return anchorOf[p];
        const q = optProducer.get(t);
        if (q !== undefined) {
          const r = resolve(q, seen);
          if (r >= 0) return r;
        }
      }
    }
    return -1;
  };
  for (const k of deferred) kernelNode.set(k, resolve(k, new Set()));
  return { role, anchorOf, kernelNode };
}

/**
 * Walks back from `seed` (breadth-first over data producers, nearest first) to the node running `kernelOp`
 * that is not yet another kernel's; returns it and the nodes between. Falls back to the seed itself.
 */
function findAnchor(
  graph: Graph,
  seed: number,
  kernelOp: string,
  anchorOf: Int32Array,
): { anchor: number; path: number[] } {
  if (opMatches(graph.nodes[seed].op, kernelOp) || INSERTED_OPS.has(kernelOp))
    return { anchor: seed, path: [] };
  const parent = new Map<number, number>([[seed, -1]]);
  let frontier = [seed];
  for (let depth = 0; depth < MAX_WALK && frontier.length > 0; depth++) {
    const next: number[] = [];
    for (const i of frontier) {
      const node = graph.nodes[i];
      // Latest producers first: the data path (not a long skip connection) is the likelier fusion chain.
      const producers = node.inputs
        .filter((t) => t !== "" && !graph.isWeight(t))
        .map((t) => graph.values.get(t)?.producer?.index ?? -1)
        .filter((p) => p >= 0 && !parent.has(p))
        .sort((a, b) => b - a);
      for (const p of producers) {
        if (anchorOf[p] !== -2) continue;
        parent.set(p, i);
        if (opMatches(graph.nodes[p].op, kernelOp)) {
          const path: number[] = [];
          for (let c = parent.get(p)!; c !== -1; c = parent.get(c)!) path.push(c);
          return { anchor: p, path };
        }
        next.push(p);
      }
    }
    frontier = next;
  }
  return { anchor: seed, path: [] };
}
