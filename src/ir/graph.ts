import { create } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  TensorProto_DataType as DT,
  TensorProtoSchema,
} from "onnx-buf";
import { ModelError } from "../errors.js";
import { type DType, dtypeSize } from "../onnx/dtype.js";
import { numel, tensorProblem } from "../onnx/tensor.js";

/** A tensor's element type and fully known shape (every dimension fixed). */
export interface TensorType {
  dtype: DType;
  shape: number[];
}

/** Bytes of a tensor of a type (0 when the type is unknown). */
export function typeBytes(t: TensorType | undefined): number {
  return t ? numel(t.shape) * dtypeSize(t.dtype) : 0;
}

/** Where a value comes from. */
export type ValueKind = "input" | "initializer" | "node";

/** A named tensor of the main graph: one producer (a node, a graph input or an initializer), any consumers. */
export interface Value {
  readonly name: string;
  readonly kind: ValueKind;
  /** The producing node for kind "node". */
  readonly producer: Node | undefined;
  /** Nodes that read it, directly or from inside a subgraph, in topological order. */
  readonly consumers: Node[];
  /** The weight for kind "initializer". */
  readonly initializer: TensorProto | undefined;
  /** True when the value is a graph output. */
  readonly isOutput: boolean;
}

/** A node of the main graph. */
export interface Node {
  /** Position in {@link Graph.nodes} (topological order). */
  readonly index: number;
  /** Unique name; unnamed nodes get `<op>_<n>`, duplicates a `_<k>` suffix. */
  readonly name: string;
  readonly op: string;
  readonly domain: string;
  /** Input names in operator order; "" marks an omitted optional input. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Outer-scope names read by this node's subgraphs (If/Loop/Scan bodies). */
  readonly implicitInputs: readonly string[];
  readonly proto: NodeProto;
  /** True for a `Constant` node (its output is a weight, copied into every stage that reads it). */
  readonly isConstant: boolean;
}

/** Options for building a graph. */
export interface GraphOptions {
  /** Name used in error messages (the model file). */
  source?: string;
}

/**
 * The main graph of an ONNX model, built once and validated: unique node names, one producer per value,
 * every read defined, no cycles, nodes in a topological order that keeps the file's order where it can.
 */
export class Graph {
  readonly model: ModelProto;
  readonly nodes: readonly Node[];
  readonly values: ReadonlyMap<string, Value>;
  /** Graph inputs that are not initializers (what a caller feeds). */
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  /** Version of the default ("ai.onnx") opset. */
  readonly opset: number;
  readonly source: string;
  private readonly byName: ReadonlyMap<string, Node>;

  constructor(model: ModelProto, opts: GraphOptions = {}) {
    const source = opts.source ?? "model";
    const g = model.graph;
    if (!g) throw new ModelError("INVALID_GRAPH", `${source}: model has no graph`, { file: source });
    this.model = model;
    this.source = source;
    this.opset = Number(
      model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 0,
    );

    const fail = (msg: string, ctx: { node?: string; tensor?: string }) => {
      throw new ModelError("INVALID_GRAPH", `${source}: ${msg}`, { file: source, ...ctx });
    };

    // Producers of every name: initializers, then inputs that are not initializers, then node outputs.
    const inits = new Map<string, TensorProto>();
    for (const t of g.initializer) {
      if (inits.has(t.name)) fail(`initializer '${t.name}' is defined twice`, { tensor: t.name });
      const problem = tensorProblem(t);
      if (problem) fail(`initializer '${t.name}' ${problem}`, { tensor: t.name });
      inits.set(t.name, t);
    }
    const producer = new Map<string, number>(); // value name -> node position in file
    const inputNames: string[] = [];
    for (const vi of g.input) if (!inits.has(vi.name)) inputNames.push(vi.name);
    const names = uniqueNodeNames(g.node);
    g.node.forEach((n, i) => {
      for (const o of n.output) {
        if (o === "") continue;
        if (inits.has(o) || inputNames.includes(o)) {
          fail(`node '${names[i]}' writes tensor '${o}', which is already a graph input or initializer`, {
            node: names[i],
            tensor: o,
          });
        }
        const prev = producer.get(o);
        if (prev !== undefined) {
          fail(`tensor '${o}' is produced by both node '${names[prev]}' and node '${names[i]}'`, {
            node: names[i],
            tensor: o,
          });
        }
        producer.set(o, i);
      }
    });
    const defined = (name: string) => producer.has(name) || inits.has(name) || inputNames.includes(name);
    const inputSet = new Set(inputNames);

    // Dependencies per node (explicit and subgraph-captured), checked to be defined.
    const implicit = g.node.map((n) => capturedNames(n));
    const deps: number[][] = g.node.map((n, i) => {
      const d: number[] = [];
      for (const name of [...n.input, ...implicit[i]]) {
        if (name === "") continue;
        if (!defined(name)) {
          fail(
            `node '${names[i]}' (${n.opType}) reads tensor '${name}', which no node, input or initializer defines`,
            {
              node: names[i],
              tensor: name,
            },
          );
        }
        const p = producer.get(name);
        if (p !== undefined && !inits.has(name) && !inputSet.has(name)) d.push(p);
      }
      return d;
    });
    const order = stableTopoOrder(g.node.length, deps, (cycle) =>
      fail(`graph has a cycle through nodes ${cycle.map((i) => `'${names[i]}'`).join(" -> ")}`, {
        node: names[cycle[0]],
      }),
    );

    const outputNames = new Set(g.output.map((o) => o.name));
    const values = new Map<string, Value>();
    const mk = (name: string, kind: ValueKind, p?: Node, init?: TensorProto): Value => {
      const v: Value = {
        name,
        kind,
        producer: p,
        consumers: [],
        initializer: init,
        isOutput: outputNames.has(name),
      };
      values.set(name, v);
      return v;
    };
    for (const [name, t] of inits) mk(name, "initializer", undefined, t);
    const inputs = inputNames.map((n) => mk(n, "input"));
    const nodes: Node[] = order.map((fileIdx, index) => {
      const p = g.node[fileIdx];
      const node: Node = {
        index,
        name: names[fileIdx],
        op: p.opType,
        domain: p.domain,
        inputs: p.input,
        outputs: p.output,
        implicitInputs: implicit[fileIdx],
        proto: p,
        isConstant: p.opType === "Constant" && (p.domain === "" || p.domain === "ai.onnx"),
      };
      if (node.isConstant) {
        const t = constantNodeValue(p);
        const problem = t ? tensorProblem(t) : undefined;
        if (problem) fail(`Constant node '${node.name}' ${problem}`, { node: node.name });
      }
      for (const o of p.output) if (o !== "") mk(o, "node", node);
      return node;
    });
    for (const node of nodes) {
      for (const name of new Set([...node.inputs, ...node.implicitInputs])) {
        if (name !== "") values.get(name)!.consumers.push(node);
      }
    }
    for (const o of g.output) {
      if (!values.has(o.name))
        fail(`graph output '${o.name}' is not produced by any node or input`, { tensor: o.name });
    }
    this.nodes = nodes;
    this.values = values;
    this.inputs = inputs;
    this.outputs = g.output.map((o) => values.get(o.name)!);
    this.byName = new Map(nodes.map((n) => [n.name, n]));
  }

  /** The node of a name; throws a ModelError naming it when absent. */
  node(name: string): Node {
    const n = this.byName.get(name);
    if (!n) throw new ModelError("INVALID_GRAPH", `${this.source}: no node named '${name}'`, { node: name });
    return n;
  }

  /** The value of a name; throws a ModelError naming it when absent. */
  value(name: string): Value {
    const v = this.values.get(name);
    if (!v)
      throw new ModelError("INVALID_GRAPH", `${this.source}: no tensor named '${name}'`, { tensor: name });
    return v;
  }

  /** True when the tensor is a weight: an initializer or the output of a Constant node. */
  isWeight(name: string): boolean {
    const v = this.values.get(name);
    return v !== undefined && (v.kind === "initializer" || (v.producer?.isConstant ?? false));
  }

  /** The constant tensor behind a name: an initializer or a Constant node's value. */
  constantTensor(name: string): TensorProto | undefined {
    const v = this.values.get(name);
    if (!v) return undefined;
    if (v.initializer) return v.initializer;
    return v.producer?.isConstant ? constantNodeValue(v.producer.proto) : undefined;
  }
}

/** Node names made unique and non-empty, stable for a given file. */
function uniqueNodeNames(nodes: readonly NodeProto[]): string[] {
  const taken = new Set(nodes.map((n) => n.name).filter((n) => n !== ""));
  const seen = new Set<string>();
  const counters = new Map<string, number>();
  return nodes.map((n) => {
    let base = n.name;
    if (base === "" || seen.has(base)) {
      const stem = base === "" ? n.opType : base;
      let k = counters.get(stem) ?? 0;
      do base = `${stem}_${k++}`;
      while (taken.has(base) || seen.has(base));
      counters.set(stem, k);
    }
    seen.add(base);
    return base;
  });
}

/** Names a node's subgraphs read from the enclosing scope, sorted. */
function capturedNames(n: NodeProto): string[] {
  const out = new Set<string>();
  for (const a of n.attribute) {
    for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs)
      for (const name of graphFreeNames(sg)) out.add(name);
  }
  return [...out].sort();
}

/** Names read inside a graph (and its nested subgraphs) but not defined there. */
export function graphFreeNames(g: GraphProto): Set<string> {
  const defined = new Set<string>([...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
  for (const n of g.node) for (const o of n.output) defined.add(o);
  const free = new Set<string>();
  for (const n of g.node) {
    for (const i of n.input) if (i !== "" && !defined.has(i)) free.add(i);
    for (const name of capturedNames(n)) if (!defined.has(name)) free.add(name);
  }
  for (const o of g.output) if (!defined.has(o.name)) free.add(o.name);
  return free;
}

/**
 * Kahn's algorithm that always emits the ready node earliest in the file, so an already sorted file keeps
 * its order exactly. Calls `onCycle` with the nodes of one cycle when there is one.
 */
function stableTopoOrder(n: number, deps: number[][], onCycle: (cycle: number[]) => never): number[] {
  const indeg = new Array<number>(n).fill(0);
  const users: number[][] = Array.from({ length: n }, () => []);
  deps.forEach((ds, i) => {
    for (const d of new Set(ds)) {
      indeg[i]++;
      users[d].push(i);
    }
  });
  const heap = new MinHeap();
  for (let i = 0; i < n; i++) if (indeg[i] === 0) heap.push(i);
  const order: number[] = [];
  while (heap.size > 0) {
    const i = heap.pop();
    order.push(i);
    for (const u of users[i]) if (--indeg[u] === 0) heap.push(u);
  }
  if (order.length < n) onCycle(findCycle(n, deps, indeg));
  return order;
}

function findCycle(n: number, deps: number[][], indeg: number[]): number[] {
  // Every node left with indeg > 0 has a dependency also left; walk back until one repeats.
  let cur = indeg.findIndex((d) => d > 0);
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  while (!seenAt.has(cur) && path.length <= n) {
    seenAt.set(cur, path.length);
    path.push(cur);
    cur = deps[cur].find((d) => indeg[d] > 0)!;
  }
  return path.slice(seenAt.get(cur)).reverse();
}

class MinHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= a[i]) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** The tensor a `Constant` node produces, from whichever `value*` attribute it carries. */
export function constantNodeValue(n: NodeProto): TensorProto | undefined {
  const a = n.attribute[0] as AttributeProto | undefined;
  if (!a) return undefined;
  const name = n.output[0];
  switch (a.name) {
    case "value":
      return a.t;
    case "value_float":
      return create(TensorProtoSchema, { name, dataType: DT.FLOAT, floatData: [a.f] });
    case "value_floats":
      return create(TensorProtoSchema, {
        name,
        dataType: DT.FLOAT,
        dims: [BigInt(a.floats.length)],
        floatData: a.floats,
      });
    case "value_int":
      return create(TensorProtoSchema, { name, dataType: DT.INT64, int64Data: [a.i] });
    case "value_ints":
      return create(TensorProtoSchema, {
        name,
        dataType: DT.INT64,
        dims: [BigInt(a.ints.length)],
        int64Data: a.ints,
      });
    default:
      return undefined;
  }
}

/** Reads attributes of a node with defaults. */
export class Attrs {
  private readonly map: Map<string, AttributeProto>;
  constructor(node: { proto: NodeProto } | NodeProto) {
    const p = "proto" in node ? node.proto : node;
    this.map = new Map(p.attribute.map((a) => [a.name, a]));
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  int(name: string, def: number): number {
    const a = this.map.get(name);
    return a && a.type === AT.INT ? Number(a.i) : def;
  }
  ints(name: string, def: number[]): number[] {
    const a = this.map.get(name);
    return a && a.type === AT.INTS ? a.ints.map((v) => Number(v)) : def;
  }
  float(name: string, def: number): number {
    const a = this.map.get(name);
    return a && a.type === AT.FLOAT ? a.f : def;
  }
  floats(name: string, def: number[]): number[] {
    const a = this.map.get(name);
    return a && a.type === AT.FLOATS ? a.floats : def;
  }
  string(name: string, def: string): string {
    const a = this.map.get(name);
    return a && a.type === AT.STRING ? new TextDecoder().decode(a.s) : def;
  }
  tensor(name: string): TensorProto | undefined {
    return this.map.get(name)?.t;
  }
  graph(name: string): GraphProto | undefined {
    return this.map.get(name)?.g;
  }
}
