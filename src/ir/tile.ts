import { create } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
} from "onnx-buf";
import { ArgumentError } from "../errors.js";
import { attribute } from "../onnx/builder.js";
import { makeTensor } from "../onnx/tensor.js";
import type { AnalyzedModel } from "./analyze.js";
import { Attrs, type Node } from "./graph.js";
import { isSpatialOp, type RowPlan, type Rows, rowRule } from "./tile-rows.js";

/**
 * Spatial tiling as a graph rewrite. A tile stack is the set of layers between a tensor `from` and a tensor
 * `to` (every node that descends from `from` and leads to `to`). {@link tileModel} replaces it by `tiles`
 * copies: copy j computes rows `[r_j, r_j+1)` of `to` (sizes in proportion to `weights`), reading the rows it
 * needs of every tensor from outside the stack through a `Slice` (the halo, worked out backwards through each
 * layer's kernel, stride, padding and dilation, and clipped at the border); each windowed layer keeps the
 * border padding only where its tile touches the true border. A `Concat` along height writes `to` again, so
 * the rest of the graph is unchanged. The tiled model is an ordinary model whose copies are independent
 * branches; a plan places them on devices like any other branches.
 */
export interface TileStackSpec {
  /** First tensor of the stack (an activation or graph input, NCHW); the stack's layers descend from it. */
  from: string;
  /** Last tensor of the stack: the one split into row tiles and joined again. */
  to: string;
  /** Number of tiles (>= 2, at most the height of `to`). */
  tiles: number;
  /** Relative tile sizes (e.g. device speeds); equal when absent. */
  weights?: number[];
  /**
   * Read `from` from the tiles of the stack before it (the earlier stack whose `to` is this stack's `from`)
   * instead of from its joined tensor: each tile gathers the rows it needs, halo included, from the previous
   * tiles' outputs (a Slice of each previous tile that holds some, a Concat of the pieces), so only halo rows
   * move between devices and the previous stack's join is dropped when nothing else reads it.
   */
  fromTiles?: boolean;
}

/** What tiling did to one stack. */
export interface TiledStack {
  spec: TileStackSpec;
  /** Names of the original layers the stack replaced, in topological order. */
  nodes: string[];
  /** Rows of `to` each tile computes. */
  rows: Rows[];
  /** Node names of each tile's copy (Slices included), and the joining Concat. */
  tileNodes: string[][];
  /** Of those, the Slices that cut each tile's rows out of tensors from outside the stack. */
  scatter: string[][];
  /**
   * With `fromTiles`: the Slices that cut the rows each tile needs out of the previous stack's tiles, each
   * with the index of the previous tile it reads (where a plan runs it). Empty otherwise.
   */
  handoff: Array<{ node: string; tile: number }>;
  /** The joining Concat; absent when the next stack reads these tiles and nothing reads the joined tensor. */
  join?: string;
  /** Multiply-accumulates of the stack untiled, and of all its tiles together (the difference is the halo). */
  macs: number;
  tiledMacs: number;
}

/** A tiled model and what each stack became. */
export interface TiledModel {
  model: ModelProto;
  stacks: TiledStack[];
  /**
   * For each layer copy (by node name): the original layer and the share of its output rows the copy computes
   * (for pricing a copy from the original's cost). Slices and joins are absent.
   */
  origin: Map<string, { node: string; share: number }>;
}

function bad(model: AnalyzedModel, msg: string, ctx: { node?: string; tensor?: string } = {}): ArgumentError {
  return new ArgumentError(`${model.graph.source}: ${msg}`, { field: "tiles", ...ctx });
}

function height(model: AnalyzedModel, name: string): number | undefined {
  const t = model.types.get(name);
  return t && t.shape.length === 4 ? t.shape[2] : undefined;
}

/**
 * The layers of the stack from `from` to `to`, in topological order, checked: each is a layer that keeps
 * spatial locality, nothing outside the stack reads its tensors (except `to`), and its tensors are NCHW.
 * Errors name the layer or tensor at fault.
 */
export function stackNodes(model: AnalyzedModel, from: string, to: string): Node[] {
  const { graph } = model;
  for (const name of [from, to]) {
    const v = graph.values.get(name);
    if (!v) throw bad(model, `tile stack: no tensor named '${name}'`, { tensor: name });
    if (graph.isWeight(name)) throw bad(model, `tile stack: '${name}' is a weight`, { tensor: name });
    if (height(model, name) === undefined)
      throw bad(model, `tile stack: tensor '${name}' is not NCHW (rank 4)`, { tensor: name });
  }
  const last = graph.values.get(to)?.producer;
  if (!last) throw bad(model, `tile stack: '${to}' is a graph input, not a computed tensor`, { tensor: to });
  const down = new Set<number>();
  for (const n of graph.nodes) {
    if (n.isConstant) continue;
    if (
      n.inputs.some(
        (i) =>
          i === from || (graph.values.get(i)?.producer && down.has(graph.values.get(i)!.producer!.index)),
      )
    )
      down.add(n.index);
  }
  if (!down.has(last.index))
    throw bad(model, `tile stack: '${to}' does not depend on '${from}'`, { tensor: to });
  const up = new Set<number>([last.index]);
  for (let i = last.index; i >= 0; i--) {
    if (!up.has(i)) continue;
    for (const name of graph.nodes[i].inputs) {
      const p = graph.values.get(name)?.producer;
      if (p && !p.isConstant) up.add(p.index);
    }
  }
  const nodes = graph.nodes.filter((n) => down.has(n.index) && up.has(n.index));
  const inStack = new Set(nodes.map((n) => n.index));
  for (const n of nodes) {
    if (!isSpatialOp(n.op))
      throw bad(
        model,
        `node '${n.name}' (${n.op}) cannot be in a tile stack: it mixes positions across rows (end the stack before it)`,
        { node: n.name },
      );
    n.outputs.forEach((o, k) => {
      const v = graph.values.get(o);
      if (!v) return;
      if (k > 0 && (v.consumers.length > 0 || v.isOutput))
        throw bad(model, `node '${n.name}' (${n.op}): its output '${o}' cannot be tiled`, { node: n.name });
      if (k > 0 || o === to) return;
      const outside = v.consumers.find((c) => !inStack.has(c.index));
      if (outside || v.isOutput)
        throw bad(
          model,
          `tile stack ${from} -> ${to}: tensor '${o}' is also read ${outside ? `by node '${outside.name}' ` : ""}outside the stack (end the stack at it, or include its readers)`,
          { tensor: o },
        );
      if (height(model, o) === undefined)
        throw bad(model, `tile stack: tensor '${o}' of node '${n.name}' is not NCHW (rank 4)`, { tensor: o });
    });
  }
  return nodes;
}

/** Row boundaries of `h` rows split in proportion to `weights` (each tile at least one row). */
export function splitRows(h: number, weights: readonly number[]): Rows[] {
  const total = weights.reduce((s, w) => s + w, 0);
  const cuts = [0];
  let acc = 0;
  for (let j = 0; j < weights.length - 1; j++) {
    acc += weights[j];
    const lo = cuts[j] + 1;
    const hi = h - (weights.length - 1 - j);
    cuts.push(Math.min(hi, Math.max(lo, Math.round((h * acc) / total))));
  }
  cuts.push(h);
  return weights.map((_, j) => ({ a: cuts[j], b: cuts[j + 1] }));
}

const hull = (x: Rows | undefined, y: Rows): Rows =>
  x ? { a: Math.min(x.a, y.a), b: Math.max(x.b, y.b) } : y;

/** The row plan of one tile: the rows every tensor must hold, and each layer copy's plan. */
export interface TileRowPlan {
  need: Map<string, Rows>;
  plans: Map<number, RowPlan>;
}

/** A checked stack and the row plans of its tiles (no model is built: cheap, for pricing). */
export interface StackRows {
  nodes: Node[];
  rows: Rows[];
  tiles: TileRowPlan[];
}

/**
 * Works out a stack's tiles backwards from the rows of `to` each tile computes: the rows every tensor must
 * hold (union over its readers) and each layer copy's padding. Errors name the layer or tensor at fault.
 */
export function tileRows(model: AnalyzedModel, spec: TileStackSpec): StackRows {
  const { graph } = model;
  const nodes = stackNodes(model, spec.from, spec.to);
  const hTo = height(model, spec.to)!;
  const k = spec.tiles;
  if (!Number.isInteger(k) || k < 2)
    throw bad(model, `tile stack ${spec.from} -> ${spec.to}: tiles must be an integer >= 2 (got ${k})`);
  if (k > hTo)
    throw bad(
      model,
      `--tiles ${k} is more than the ${hTo} rows of tensor '${spec.to}' (at most ${hTo} tiles)`,
      {
        tensor: spec.to,
      },
    );
  const weights = spec.weights ?? Array.from({ length: k }, () => 1);
  if (weights.length !== k || weights.some((w) => !(w > 0)))
    throw bad(model, `tile stack ${spec.from} -> ${spec.to}: give ${k} positive tile weights`);
  const rows = splitRows(hTo, weights);
  const stackTensors = new Set(nodes.map((n) => n.outputs[0]));
  const tiles = rows.map((r) => {
    const need = new Map<string, Rows>([[spec.to, r]]);
    const plans = new Map<number, RowPlan>();
    for (let q = nodes.length - 1; q >= 0; q--) {
      const n = nodes[q];
      const want = need.get(n.outputs[0]);
      if (!want) continue;
      const hIn = height(model, n.inputs[0]) ?? 0;
      const hOut = height(model, n.outputs[0])!;
      const plan = rowRule(
        graph,
        n,
        want,
        hIn,
        hOut,
        n.inputs.map((i) => height(model, i)),
      );
      plans.set(n.index, plan);
      plan.inputs.forEach((r, i) => {
        if (r) need.set(n.inputs[i], hull(need.get(n.inputs[i]), r));
        else if (stackTensors.has(n.inputs[i]))
          throw bad(model, `node '${n.name}' (${n.op}) reads '${n.inputs[i]}' whole inside a tile`, {
            node: n.name,
          });
      });
    }
    return { need, plans };
  });
  return { nodes, rows, tiles };
}

/** The share of a layer's output rows a tile copy computes (1: all of them, so > 1/k means halo). */
export function rowShare(model: AnalyzedModel, n: Node, plan: RowPlan, need: Rows): number {
  const made = plan.computes ?? need;
  return (made.b - made.a) / (height(model, n.outputs[0]) ?? 1);
}

/** Options of {@link tileModel}. */
export interface TileOptions {
  /**
   * Put the Slices that cut each tile's rows out of the stack's input before all tile copies (default
   * false: each with its tile). A plan then runs them where the input is made and sends each tile only its
   * rows.
   */
  slicesFirst?: boolean;
  /**
   * Crop rows inside a tile with a Slice, not with a one-hot depthwise Conv (default false: float32 crops are
   * Convs). Inside a run of convolutions onnxruntime keeps its blocked layout; a Slice there makes it convert
   * the tensor out of that layout and back (0.66-0.91 ms of a 13-19 ms ResNet-50 tile stage), a depthwise
   * Conv of kernel [k, 1] with weight 1 at the first kept row runs in the blocked layout and moves each value
   * once, exactly (times 1, plus zeros times the others). Only crops of a kernel of 2 to
   * {@link CONV_CROP_MAX_KERNEL} rows: the Conv reads its kernel's rows for each row it writes.
   */
  sliceCrops?: boolean;
}

/**
 * Largest kernel height (rows dropped + 1) of a crop made a depthwise Conv. Measured on the local pair
 * (`bench/tiles.ts`, the same plan with Slice crops beside it, two runs): ResNet-50's residual crops (kernel 2-3)
 * as Convs 71.0 / 66.4 ms p50 against 82.4 / 69.5 with Slices; UNet's skip crops (kernel 5-91) as Convs 50.4 /
 * 56.6 against 47.8 / 54.8.
 */
export const CONV_CROP_MAX_KERNEL = 4;

/** Tiles every stack of `specs` (disjoint stacks of one analyzed model) and returns the rewritten model. */
export function tileModel(
  model: AnalyzedModel,
  specs: readonly TileStackSpec[],
  opts: TileOptions = {},
): TiledModel {
  const { graph } = model;
  const opset = graph.opset;
  const replaced = new Map<number, NodeProto[]>(); // index of a stack's last node -> what replaces the stack
  const removed = new Set<number>();
  const removedTensors = new Set<string>();
  const inits = [...(graph.model.graph?.initializer ?? [])];
  const stacks: TiledStack[] = [];
  const origin = new Map<string, { node: string; share: number }>();
  const byTo = new Map<string, TiledStack>();
  const lastOf = new Map<TiledStack, number>(); // stack -> index of its last layer (where its nodes go)
  for (const spec of specs) {
    const { nodes, rows, tiles } = tileRows(model, spec);
    const prev = spec.fromTiles ? byTo.get(spec.from) : undefined;
    if (spec.fromTiles && !prev)
      throw bad(
        model,
        `tile stack ${spec.from} -> ${spec.to} reads its input from tiles, but no earlier stack ends at '${spec.from}'`,
        { tensor: spec.from },
      );
    for (const n of nodes) {
      if (removed.has(n.index)) throw bad(model, `tile stacks overlap at node '${n.name}'`, { node: n.name });
      removed.add(n.index);
      for (const o of n.outputs) if (o !== spec.to) removedTensors.add(o);
    }
    const k = rows.length;
    const stackTensors = new Set(nodes.map((n) => n.outputs[0]));
    const int64 = (name: string, v: number): string => {
      inits.push(makeTensor(name, "int64", [1], BigInt64Array.of(BigInt(v))));
      return name;
    };
    /** A Slice of rows [s0, s1) (along height) of `src` into tensor `name`. */
    const sliceNode = (nodeName: string, name: string, src: string, s0: number, s1: number): NodeProto =>
      opset >= 10
        ? create(NodeProtoSchema, {
            name: nodeName,
            opType: "Slice",
            input: [src, ...[s0, s1, 2].map((v, i) => int64(`${name}.${["starts", "ends", "axes"][i]}`, v))],
            output: [name],
          })
        : create(NodeProtoSchema, {
            name: nodeName,
            opType: "Slice",
            input: [src],
            output: [name],
            attribute: [attribute("starts", [s0]), attribute("ends", [s1]), attribute("axes", [2])],
          });
    /**
     * Rows [s0, s1) of `src` (a tile tensor of `have` rows, of original tensor `orig`) into `name`: a one-hot
     * depthwise Conv where it can be one (float32, 4-D, channels known), else a Slice.
     */
    const cropNode = (
      nodeName: string,
      name: string,
      src: string,
      orig: string,
      have: number,
      s0: number,
      s1: number,
    ): NodeProto => {
      const t = model.types.get(orig);
      const channels = t?.shape.length === 4 ? t.shape[1] : 0;
      const kh = have - (s1 - s0) + 1;
      if (opts.sliceCrops || t?.dtype !== "float32" || !(channels > 0) || kh < 2 || kh > CONV_CROP_MAX_KERNEL)
        return sliceNode(nodeName, name, src, s0, s1);
      const w = new Float32Array(channels * kh);
      for (let c = 0; c < channels; c++) w[c * kh + s0] = 1;
      const weight = `${name}.crop_w`;
      inits.push(makeTensor(weight, "float32", [channels, 1, kh, 1], w));
      return create(NodeProtoSchema, {
        name: nodeName,
        opType: "Conv",
        input: [src, weight],
        output: [name],
        attribute: [
          attribute("kernel_shape", [kh, 1]),
          attribute("group", channels),
          attribute("pads", [0, 0, 0, 0]),
          attribute("strides", [1, 1]),
        ],
      });
    };
    const out: NodeProto[] = [];
    const scatter: NodeProto[] = [];
    const tileNodes: string[][] = [];
    const scatterNames: string[][] = [];
    const handoff: Array<{ node: string; tile: number }> = [];
    const pieces = new Map<string, string>(); // `${tile}:${a}:${b}` of the previous stack -> its Slice
    let tiledMacs = 0;
    const macs = nodes.reduce((s, n) => s + model.costs[n.index].macs, 0);
    for (let j = 0; j < k; j++) {
      const { need, plans } = tiles[j];
      // Forwards: the copy of each layer, reading Slices where it needs fewer rows than were computed.
      const names: string[] = [];
      const outside: string[] = [];
      scatterNames.push(outside);
      const sliced = new Map<string, string>();
      const tname = (t: string) => `${t}.tile${j}`;
      const slice = (
        src: string,
        have: Rows,
        want: Rows,
        base: string,
        as?: string,
        first = false,
        orig?: string,
      ): string => {
        if (have.a === want.a && have.b === want.b && as === undefined) return src;
        const key = `${src}:${want.a}:${want.b}`;
        const done = sliced.get(key);
        if (done) return done;
        const name = as ?? `${base}.rows${want.a}_${want.b}`;
        // Node and tensor names are separate namespaces; a crop keeps the layer copy's node name free.
        const nodeName = as === undefined ? name : `${name}.crop`;
        // Rows of a tensor made inside this tile are cropped in the layers' layout; others are sliced.
        const node =
          orig !== undefined
            ? cropNode(nodeName, name, src, orig, have.b - have.a, want.a - have.a, want.b - have.a)
            : sliceNode(nodeName, name, src, want.a - have.a, want.b - have.a);
        (first ? scatter : out).push(node);
        names.push(nodeName);
        if (base.endsWith(".in")) outside.push(nodeName);
        sliced.set(key, name);
        return name;
      };
      // With fromTiles: the rows of `from` this tile needs, gathered from the previous stack's tiles.
      let gathered: string | undefined;
      const gather = (): string => {
        if (gathered) return gathered;
        const want = need.get(spec.from)!;
        const parts: string[] = [];
        prev!.rows.forEach((own, s) => {
          const a = Math.max(want.a, own.a);
          const b = Math.min(want.b, own.b);
          if (a >= b) return;
          const src = `${spec.from}.tile${s}`;
          if (a === own.a && b === own.b) {
            parts.push(src);
            return;
          }
          const key = `${s}:${a}:${b}`;
          let piece = pieces.get(key);
          if (!piece) {
            piece = `${src}.rows${a}_${b}`;
            pieces.set(key, piece);
            out.push(sliceNode(piece, piece, src, a - own.a, b - own.a));
            handoff.push({ node: piece, tile: s });
          }
          parts.push(piece);
        });
        if (parts.length === 1) gathered = parts[0];
        else {
          gathered = `${tname(spec.from)}.in.rows${want.a}_${want.b}`;
          const node = `${gathered}.gather`;
          out.push(
            create(NodeProtoSchema, {
              name: node,
              opType: "Concat",
              input: parts,
              output: [gathered],
              attribute: [attribute("axis", 2)],
            }),
          );
          names.push(node);
        }
        return gathered;
      };
      for (const n of nodes) {
        const plan = plans.get(n.index);
        if (!plan) continue;
        const inputs = n.inputs.map((name, i) => {
          const r = plan.inputs[i];
          if (!r) return name;
          if (stackTensors.has(name))
            return slice(tname(name), need.get(name)!, r, tname(name), undefined, false, name);
          if (prev && name === spec.from)
            return slice(gather(), need.get(name)!, r, `${tname(name)}.in.part`);
          return slice(
            name,
            { a: 0, b: height(model, name)! },
            r,
            `${tname(name)}.in`,
            undefined,
            opts.slicesFirst,
          );
        });
        const want = need.get(n.outputs[0])!;
        const made = plan.computes ?? want;
        const target = plan.computes ? `${tname(n.outputs[0])}.full` : tname(n.outputs[0]);
        const copy = create(NodeProtoSchema, {
          ...fields(n.proto),
          name: `${n.name}.tile${j}`,
          input: inputs,
          output: [target],
          attribute: rewriteAttrs(model, n, plan),
        });
        out.push(copy);
        names.push(copy.name);
        const share = rowShare(model, n, plan, want);
        tiledMacs += model.costs[n.index].macs * share;
        origin.set(copy.name, { node: n.name, share });
        if (plan.computes) slice(target, made, want, target, tname(n.outputs[0]), false, n.outputs[0]);
      }
      tileNodes.push(names);
    }
    const join = `${graph.values.get(spec.to)!.producer!.name}.join`;
    out.push(
      create(NodeProtoSchema, {
        name: join,
        opType: "Concat",
        input: rows.map((_, j) => `${spec.to}.tile${j}`),
        output: [spec.to],
        attribute: [attribute("axis", 2)],
      }),
    );
    replaced.set(nodes[nodes.length - 1].index, [...scatter, ...out]);
    const stack: TiledStack = {
      spec,
      nodes: nodes.map((n) => n.name),
      rows,
      tileNodes,
      scatter: scatterNames,
      handoff,
      join,
      macs,
      tiledMacs,
    };
    stacks.push(stack);
    byTo.set(spec.to, stack);
    lastOf.set(stack, nodes[nodes.length - 1].index);
  }
  // A join whose tensor only stacks reading the tiles read (and no graph output) goes.
  for (const st of stacks) {
    const v = graph.values.get(st.spec.to)!;
    const readers = stacks.filter((b) => b.spec.fromTiles && b.spec.from === st.spec.to);
    if (readers.length === 0 || v.isOutput) continue;
    const inReaders = new Set(readers.flatMap((b) => b.nodes));
    if (!v.consumers.every((c) => inReaders.has(c.name))) continue;
    const at = lastOf.get(st)!;
    replaced.set(
      at,
      replaced.get(at)!.filter((n) => n.name !== st.join),
    );
    removedTensors.add(st.spec.to);
    st.join = undefined;
  }
  const nodeList: NodeProto[] = [];
  for (const n of graph.nodes) {
    const r = replaced.get(n.index);
    if (r) nodeList.push(...r);
    else if (!removed.has(n.index)) nodeList.push(n.proto);
  }
  const g = graph.model.graph!;
  const tiled = create(ModelProtoSchema, {
    ...fields(graph.model),
    graph: create(GraphProtoSchema, {
      ...fields(g),
      node: nodeList,
      initializer: inits,
      valueInfo: g.valueInfo.filter((vi) => !removedTensors.has(vi.name)),
    }),
  });
  return { model: tiled, stacks, origin };
}

/**
 * A message's fields without its type tag: `create` returns a tagged object as it is, so a spread of a decoded
 * message with fields changed would skip the schema's defaults (a node's `domain` would read undefined).
 */
function fields<T extends { $typeName: string }>(m: T): Omit<T, "$typeName"> {
  const { $typeName: _, ...rest } = m;
  return rest;
}

/** The attributes of a layer's tile copy: its height padding (and output padding) from the row plan. */
function rewriteAttrs(model: AnalyzedModel, n: Node, plan: RowPlan): AttributeProto[] {
  if (!plan.pads) return n.proto.attribute;
  const at = new Attrs(n);
  const keep = n.proto.attribute.filter((a) => !["pads", "auto_pad", "output_padding"].includes(a.name));
  if (n.op === "ConvTranspose") {
    const p = at.ints("pads", [0, 0, 0, 0]);
    const op = at.ints("output_padding", [0, 0]);
    return [
      ...keep,
      attribute("pads", [0, p[1], 0, p[3]]),
      attribute("output_padding", [plan.outputPadding ?? 0, op[1]]),
    ];
  }
  return [
    ...keep,
    attribute("pads", [plan.pads[0], widthPads(model, n, at), plan.pads[1], widthPads(model, n, at, true)]),
  ];
}

/** A windowed layer's left (or right) padding along width, explicit also under `auto_pad`. */
function widthPads(model: AnalyzedModel, n: Node, at: Attrs, right = false): number {
  const auto = at.string("auto_pad", "NOTSET");
  if (auto === "VALID") return 0;
  if (auto === "NOTSET") return at.ints("pads", [0, 0, 0, 0])[right ? 3 : 1] ?? 0;
  const wIn = model.types.get(n.inputs[0])!.shape[3];
  const wOut = model.types.get(n.outputs[0])!.shape[3];
  const wDims = n.op === "Conv" ? model.graph.constantTensor(n.inputs[1])?.dims.map(Number) : undefined;
  const k = at.ints("kernel_shape", wDims ? wDims.slice(2) : [1, 1])[1] ?? 1;
  const s = at.ints("strides", [1, 1])[1] ?? 1;
  const d = at.ints("dilations", [1, 1])[1] ?? 1;
  const total = Math.max(0, (wOut - 1) * s + d * (k - 1) + 1 - wIn);
  const first = auto === "SAME_UPPER" ? Math.floor(total / 2) : Math.ceil(total / 2);
  return right ? total - first : first;
}
