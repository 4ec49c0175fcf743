import { create } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  type NodeProto,
  NodeProtoSchema,
  type TensorProto,
  ValueInfoProtoSchema,
} from "onnx-buf";
import { errorMessage, ModelError, RuntimeFault } from "../errors.js";
import { isDType } from "../onnx/dtype.js";
import { createSession, type ort } from "../onnx/ort.js";
import { makeTensor, type TypedArray, tensorToNumbers } from "../onnx/tensor.js";
import { Attrs, Graph, graphFreeNames, type Node, type TensorType } from "./graph.js";
import { type GivenInput, inputTensor } from "./input-values.js";

/** Options for {@link foldModel}. */
export interface FoldOptions {
  /** Resolved types of the graph inputs (for the feeds of given values). */
  inputTypes: ReadonlyMap<string, TensorType>;
  /** Given input values: they decide `If` conditions (they are never folded into weights). */
  inputValues?: ReadonlyMap<string, GivenInput>;
}

/** An `If` left as one node: its condition depends on these inputs, which have no given value. */
export interface UndecidedIf {
  node: string;
  inputs: string[];
}

/** What {@link foldModel} did. */
export interface FoldResult {
  /** The model with constant subgraphs replaced by initializers and decided `If`s by their branch. */
  model: ModelProto;
  /** Its graph (the input graph itself when nothing changed). */
  graph: Graph;
  /** Nodes evaluated once and replaced by the tensors they compute. */
  folded: number;
  /** Bytes of the initializers folding added. */
  foldedBytes: number;
  /** Names of the `If` nodes replaced by their taken branch. */
  inlined: string[];
  /** `If` nodes left whole. */
  undecided: UndecidedIf[];
}

/** Ops whose outputs differ between runs: never folded. */
const NONDETERMINISTIC = new Set([
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Multinomial",
  "Bernoulli",
]);

const isDefaultDomain = (n: Node) => n.domain === "" || n.domain === "ai.onnx";

/**
 * Folds a model's constant subgraphs and inlines the `If`s it can decide, until nothing changes:
 * - a node whose inputs are all weights (initializers, `Constant` outputs, folded tensors) is evaluated once
 *   with onnxruntime and its outputs that later nodes read become initializers, so they are priced as
 *   parameters and never cross a cut;
 * - an `If` whose condition follows from weights and given input values is replaced by its taken branch
 *   (locals renamed where they clash, branch outputs written to the `If`'s outputs), so the layers inside
 *   become nodes that can be costed and cut; the nodes computing the condition are dropped when nothing
 *   else reads them. Given inputs stay graph inputs: the result is the model specialised to those values.
 * Throws a RuntimeFault when onnxruntime cannot evaluate a constant subgraph.
 */
export async function foldModel(graph: Graph, opts: FoldOptions): Promise<FoldResult> {
  const values = opts.inputValues ?? new Map<string, GivenInput>();
  const keep = new Set<string>();
  const inlined: string[] = [];
  let folded = 0;
  let foldedBytes = 0;
  let g = graph;
  for (let round = 0; round < 64; round++) {
    const c = classify(g, values, keep);
    if (c.fold.size === 0 && c.ifs.length === 0) break;
    const conds = c.ifs
      .map((n) => n.inputs[0])
      .filter((name) => g.constantTensor(name) === undefined && g.value(name).kind === "node");
    const wanted = [...new Set([...c.targets, ...conds])];
    const results = wanted.length > 0 ? await evaluate(g, wanted, opts.inputTypes, values) : new Map();
    const unfit = c.targets.filter((name) => results.get(name) === undefined);
    if (unfit.length > 0) {
      // A target that is not a plain tensor (a sequence, a string): keep its producer and fold what feeds it.
      for (const name of unfit) keep.add(g.value(name).producer!.name);
      continue;
    }
    const condOf = (n: Node): boolean => {
      const given = values.get(n.inputs[0]);
      const t = g.constantTensor(n.inputs[0]) ?? results.get(n.inputs[0]);
      const v = given
        ? Array.from(given.data as ArrayLike<number | bigint>, Number)
        : t
          ? tensorToNumbers(t)
          : [];
      if (v.length !== 1)
        throw new ModelError(
          "INVALID_GRAPH",
          `${g.source}: If node '${n.name}' has a condition of ${v.length} values`,
          {
            file: g.source,
            node: n.name,
          },
        );
      return v[0] !== 0;
    };
    const added: TensorProto[] = c.targets.map((name) => results.get(name)!);
    for (const t of added) foldedBytes += t.rawData.length;
    folded += c.fold.size;
    const decided = new Map(c.ifs.map((n) => [n, condOf(n)]));
    inlined.push(...c.ifs.map((n) => n.name));
    g = rebuild(g, c, added, decided);
  }
  return { model: g.model, graph: g, folded, foldedBytes, inlined, undecided: undecidedIfs(g, values) };
}

interface Classified {
  /** Nodes computed from weights only (to be replaced by their outputs). */
  fold: Set<Node>;
  /** Outputs of folded nodes read by nodes that stay. */
  targets: string[];
  /** Nodes computable from weights and given inputs (dropped when nothing reads them any more). */
  known: Set<Node>;
  /** Ifs whose condition is computable. */
  ifs: Node[];
}

function classify(g: Graph, values: ReadonlyMap<string, GivenInput>, keep: ReadonlySet<string>): Classified {
  const known = new Set<string>();
  const pure = new Set<string>();
  for (const v of g.values.values()) {
    if (v.kind === "initializer") {
      known.add(v.name);
      pure.add(v.name);
    } else if (v.kind === "input" && values.has(v.name)) known.add(v.name);
  }
  const fold = new Set<Node>();
  const knownNodes = new Set<Node>();
  const ifs: Node[] = [];
  for (const n of g.nodes) {
    const outs = n.outputs.filter((o) => o !== "");
    if (n.isConstant) {
      for (const o of outs) {
        known.add(o);
        pure.add(o);
      }
      knownNodes.add(n);
      continue;
    }
    if (!isDefaultDomain(n) || NONDETERMINISTIC.has(n.op) || keep.has(n.name)) continue;
    if (n.op === "If") {
      if (known.has(n.inputs[0])) ifs.push(n);
      continue;
    }
    const ins = [...n.inputs.filter((i) => i !== ""), ...n.implicitInputs];
    if (!ins.every((i) => known.has(i))) continue;
    knownNodes.add(n);
    for (const o of outs) known.add(o);
    if (!ins.every((i) => pure.has(i))) continue;
    for (const o of outs) pure.add(o);
    // A node writing a graph output stays (an initializer cannot be the caller's output of a stage).
    if (!outs.some((o) => g.value(o).isOutput)) fold.add(n);
  }
  const targets: string[] = [];
  for (const n of fold)
    for (const o of n.outputs)
      if (o !== "" && g.value(o).consumers.some((c) => !fold.has(c))) targets.push(o);
  return { fold, targets, known: knownNodes, ifs };
}

/** Evaluates tensors of the graph in onnxruntime on a model of just the nodes they depend on. */
async function evaluate(
  g: Graph,
  names: readonly string[],
  inputTypes: ReadonlyMap<string, TensorType>,
  values: ReadonlyMap<string, GivenInput>,
): Promise<Map<string, TensorProto | undefined>> {
  const need = new Set<number>();
  const stack = names.map((n) => g.value(n).producer).filter((p): p is Node => p !== undefined);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (need.has(n.index)) continue;
    need.add(n.index);
    for (const i of [...n.inputs, ...n.implicitInputs]) {
      const p = i === "" ? undefined : g.value(i).producer;
      if (p && !need.has(p.index)) stack.push(p);
    }
  }
  const nodes = g.nodes.filter((n) => need.has(n.index));
  const reads = new Set(nodes.flatMap((n) => [...n.inputs, ...n.implicitInputs]));
  const gp = g.model.graph!;
  const inputs = g.inputs.filter((v) => reads.has(v.name)).map((v) => v.name);
  const model: ModelProto = {
    ...g.model,
    graph: create(GraphProtoSchema, {
      name: "cleave-constant-subgraph",
      node: nodes.map((n) => n.proto),
      initializer: gp.initializer.filter((t) => reads.has(t.name)),
      input: gp.input.filter((vi) => inputs.includes(vi.name)),
      output: names.map((name) => create(ValueInfoProtoSchema, { name })),
    }),
  };
  const source = `${g.source} (constant subgraph)`;
  const session = await createSession(model, { optimization: "disabled", source });
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of inputs) feeds[name] = inputTensor(name, inputTypes.get(name)!, values, 0);
  const out = new Map<string, TensorProto | undefined>();
  try {
    const r = await session.run(feeds, [...names]);
    for (const name of names) out.set(name, asTensorProto(name, r[name]));
  } catch (err) {
    throw new RuntimeFault("RUNTIME", `${source}: onnxruntime cannot evaluate it (${errorMessage(err)})`, {
      file: g.source,
    });
  } finally {
    await session.release();
  }
  return out;
}

function asTensorProto(name: string, v: unknown): TensorProto | undefined {
  if (!v || typeof v !== "object" || !("dims" in v) || !("type" in v)) return undefined;
  const t = v as ort.Tensor;
  if (!isDType(t.type) || t.type === "string") return undefined;
  const data = (t.data as TypedArray).slice();
  return makeTensor(
    name,
    t.type,
    t.dims.map((d) => Number(d)),
    data,
  );
}

/** The model with folded nodes replaced by initializers, decided Ifs by their branch, dead known nodes gone. */
function rebuild(g: Graph, c: Classified, added: TensorProto[], decided: ReadonlyMap<Node, boolean>): Graph {
  const gp = g.model.graph!;
  const byProto = new Map(g.nodes.map((n) => [n.proto, n]));
  const inits = [...gp.initializer, ...added];
  let nodes: NodeProto[] = [];
  const taken = tensorNames(gp, new Set([...decided.keys()].map((n) => n.proto)));
  for (const p of gp.node) {
    const n = byProto.get(p)!;
    if (c.fold.has(n)) continue;
    const cond = decided.get(n);
    if (cond === undefined) {
      nodes.push(p);
      continue;
    }
    const branch = inlineBranch(g, n, cond, taken);
    nodes.push(...branch.nodes);
    inits.push(...branch.initializers);
  }
  // Drop known nodes (condition arithmetic, Constants) that nothing reads any more.
  const removable = new Set([...c.known].map((n) => n.proto));
  for (;;) {
    const read = readNames(nodes, gp);
    const next = nodes.filter((p) => !removable.has(p) || p.output.some((o) => o !== "" && read.has(o)));
    if (next.length === nodes.length) break;
    nodes = next;
  }
  const before = readNames(gp.node, gp);
  const after = readNames(nodes, gp);
  // Weights only removed nodes read go (a folded condition, say); unused initializers of the file stay.
  const fresh = new Set(added);
  const dropped = new Set(
    inits.filter((t) => (before.has(t.name) || fresh.has(t)) && !after.has(t.name)).map((t) => t.name),
  );
  const graph: GraphProto = create(GraphProtoSchema, {
    ...gp,
    node: nodes,
    initializer: inits.filter((t) => !dropped.has(t.name)),
    input: gp.input.filter((vi) => !dropped.has(vi.name)),
  });
  return new Graph({ ...g.model, graph }, { source: g.source });
}

/** Names read by nodes (explicitly or from their subgraphs) and graph outputs. */
function readNames(nodes: readonly NodeProto[], gp: GraphProto): Set<string> {
  const read = new Set<string>(gp.output.map((o) => o.name));
  for (const n of nodes) {
    for (const i of n.input) if (i !== "") read.add(i);
    for (const a of n.attribute)
      for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) for (const x of graphFreeNames(sg)) read.add(x);
  }
  return read;
}

/** Every tensor name of the main graph and of all subgraphs except those of the `skip` nodes. */
function tensorNames(gp: GraphProto, skip: ReadonlySet<NodeProto>): Set<string> {
  const names = new Set<string>();
  const walk = (g: GraphProto) => {
    for (const x of [...g.input, ...g.output]) names.add(x.name);
    for (const t of g.initializer) names.add(t.name);
    for (const n of g.node) {
      for (const x of [...n.input, ...n.output]) names.add(x);
      if (skip.has(n)) continue;
      for (const a of n.attribute) for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) walk(sg);
    }
  };
  walk(gp);
  return names;
}

/** The nodes and initializers of an If's taken branch, renamed to live in the main graph. */
function inlineBranch(
  g: Graph,
  ifNode: Node,
  cond: boolean,
  taken: Set<string>,
): { nodes: NodeProto[]; initializers: TensorProto[] } {
  const attr = cond ? "then_branch" : "else_branch";
  const branch = new Attrs(ifNode).graph(attr);
  if (!branch)
    throw new ModelError("INVALID_GRAPH", `${g.source}: If node '${ifNode.name}' has no ${attr}`, {
      file: g.source,
      node: ifNode.name,
    });
  const rename = new Map<string, string>();
  const fresh = (name: string) => {
    let out = name;
    for (let k = 0; taken.has(out); k++)
      out = k === 0 ? `${ifNode.name}/${name}` : `${ifNode.name}/${name}_${k}`;
    taken.add(out);
    return out;
  };
  const producedHere = new Set(branch.node.flatMap((n) => n.output).filter((o) => o !== ""));
  const uses = new Map<string, number>();
  for (const o of branch.output) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  branch.output.forEach((o, k) => {
    const target = ifNode.outputs[k];
    if (target && producedHere.has(o.name) && uses.get(o.name) === 1) rename.set(o.name, target);
  });
  for (const t of branch.initializer) rename.set(t.name, fresh(t.name));
  for (const n of branch.node)
    for (const o of n.output) if (o !== "" && !rename.has(o)) rename.set(o, fresh(o));
  const r = (x: string) => (x === "" ? "" : (rename.get(x) ?? x));
  const nodes = branch.node.map((n, i) =>
    create(NodeProtoSchema, {
      ...n,
      name: `${ifNode.name}/${n.name === "" ? `${n.opType}_${i}` : n.name}`,
      input: n.input.map(r),
      output: n.output.map(r),
      attribute: n.attribute.map((a) => renameAttr(a, rename)),
    }),
  );
  branch.output.forEach((o, k) => {
    const target = ifNode.outputs[k];
    if (!target || rename.get(o.name) === target) return;
    nodes.push(
      create(NodeProtoSchema, {
        name: `${ifNode.name}/output_${k}`,
        opType: "Identity",
        input: [r(o.name)],
        output: [target],
      }),
    );
  });
  const initializers = branch.initializer.map((t) => ({ ...t, name: r(t.name) }));
  return { nodes, initializers };
}

/** An attribute whose subgraphs read renamed outer names under their new names. */
function renameAttr(a: AttributeProto, rename: ReadonlyMap<string, string>): AttributeProto {
  if (!a.g && a.graphs.length === 0) return a;
  return {
    ...a,
    g: a.g ? renameRefs(a.g, rename) : a.g,
    graphs: a.graphs.map((sg) => renameRefs(sg, rename)),
  };
}

function renameRefs(sg: GraphProto, rename: ReadonlyMap<string, string>): GraphProto {
  const local = new Set<string>([...sg.input.map((i) => i.name), ...sg.initializer.map((t) => t.name)]);
  for (const n of sg.node) for (const o of n.output) local.add(o);
  const r = (x: string) => (x === "" || local.has(x) ? x : (rename.get(x) ?? x));
  return create(GraphProtoSchema, {
    ...sg,
    node: sg.node.map((n) =>
      create(NodeProtoSchema, {
        ...n,
        input: n.input.map(r),
        attribute: n.attribute.map((a) => renameAttr(a, rename)),
      }),
    ),
    output: sg.output.map((o) => ({ ...o, name: r(o.name) })),
  });
}

/** Ifs left in the graph, each with the graph inputs without given values its condition depends on. */
function undecidedIfs(g: Graph, values: ReadonlyMap<string, GivenInput>): UndecidedIf[] {
  const out: UndecidedIf[] = [];
  for (const n of g.nodes) {
    if (n.op !== "If" || !isDefaultDomain(n)) continue;
    const inputs = new Set<string>();
    const seen = new Set<string>();
    const stack = [n.inputs[0]];
    while (stack.length > 0) {
      const name = stack.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      const v = g.value(name);
      if (v.kind === "input" && !values.has(name)) inputs.add(name);
      for (const i of v.producer ? [...v.producer.inputs, ...v.producer.implicitInputs] : [])
        if (i !== "") stack.push(i);
    }
    out.push({ node: n.name, inputs: [...inputs].sort() });
  }
  return out;
}
