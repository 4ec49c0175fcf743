import type { AnalyzedModel } from "../ir/analyze.js";
import { typeBytes } from "../ir/graph.js";
import { type ModelIndex, modelIndex } from "./model-index.js";

/** Activation bytes a segment reads from outside (graph inputs or other stages) and hands on. */
export interface SegmentIO {
  /** Bytes of the distinct activations the segment reads but does not produce (weights excluded). */
  bytesIn: number;
  /** Bytes of the tensors it produces that a node outside it reads or that are graph outputs. */
  bytesOut: number;
  /**
   * Bytes of boundary tensors (not graph inputs) read or produced by a node for which `blocked(node)` holds:
   * the layout conversions a boundary inside a run of blocked-layout kernels adds.
   */
  bytesBlocked: number;
}

/** A membership mask of `nodes` over the graph's nodes. */
export function nodeMask(model: AnalyzedModel, nodes: readonly number[]): Uint8Array {
  const mask = new Uint8Array(model.graph.nodes.length);
  for (const i of nodes) mask[i] = 1;
  return mask;
}

/** Input and output activation bytes of running `nodes` (graph node indices) as one stage. */
export function segmentIO(
  model: AnalyzedModel,
  nodes: readonly number[],
  mask = nodeMask(model, nodes),
  blocked: (node: number) => boolean = () => false,
): SegmentIO {
  const { graph, types } = model;
  const seenIn = new Set<string>();
  const blockedIn = new Set<string>();
  let bytesIn = 0;
  let bytesOut = 0;
  let bytesBlocked = 0;
  for (const i of nodes) {
    const node = graph.nodes[i];
    if (node.isConstant) continue;
    for (const t of [...node.inputs, ...node.implicitInputs]) {
      if (t === "" || graph.isWeight(t)) continue;
      const v = graph.values.get(t);
      const p = v?.producer;
      if (p && mask[p.index]) continue;
      if (!seenIn.has(t)) {
        seenIn.add(t);
        bytesIn += typeBytes(types.get(t));
      }
      if (p && !blockedIn.has(t) && blocked(i)) {
        blockedIn.add(t);
        bytesBlocked += typeBytes(types.get(t));
      }
    }
    for (const t of node.outputs) {
      if (t === "") continue;
      const v = graph.values.get(t);
      if (!v) continue;
      if (v.isOutput || v.consumers.some((c) => !mask[c.index])) {
        bytesOut += typeBytes(types.get(t));
        if (blocked(i)) bytesBlocked += typeBytes(types.get(t));
      }
    }
  }
  return { bytesIn, bytesOut, bytesBlocked };
}

/** Memory a segment needs, bytes, split into its parts. */
export interface SegmentMemory {
  /** Distinct weights (initializers and Constant outputs) its nodes read. */
  weights: number;
  /** Largest set of activations live at once when its nodes run in graph order. */
  activations: number;
}

/** Per model: scratch marks reused across calls (a call's marks are those equal to its generation). */
interface Scratch {
  gen: number;
  inSeg: Uint32Array;
  seen: Uint32Array;
  usesGen: Uint32Array;
  uses: Int32Array;
}
const scratches = new WeakMap<ModelIndex, Scratch>();

function scratchOf(ix: ModelIndex): Scratch {
  let s = scratches.get(ix);
  if (!s || s.gen >= 0xfffffffe) {
    const T = ix.bytes.length;
    s = {
      gen: 0,
      inSeg: new Uint32Array(ix.reads.length),
      seen: new Uint32Array(T),
      usesGen: new Uint32Array(T),
      uses: new Int32Array(T),
    };
    scratches.set(ix, s);
  }
  s.gen++;
  return s;
}

/**
 * Weights and peak live activations of running `nodes` in graph order. A tensor is live from its producer
 * (or from the start, for tensors read from outside) until its last reader in the segment; tensors handed
 * on to other stages or returned stay live to the end. While a node runs, its inputs and outputs are live.
 * O(nodes + their edges) over the model's integer index.
 */
export function segmentMemory(model: AnalyzedModel, nodes: readonly number[]): SegmentMemory {
  const ix = modelIndex(model);
  const order = Int32Array.from(nodes).sort();
  const sc = scratchOf(ix);
  const { gen, inSeg, seen, usesGen, uses } = sc;
  const { bytes, producer } = ix;
  for (const i of order) inSeg[i] = gen;
  let weights = 0;
  let live = 0;
  const weight = (t: number) => {
    if (seen[t] !== gen) {
      seen[t] = gen;
      weights += bytes[t];
    }
  };
  for (const i of order) {
    if (ix.isConstant[i]) {
      for (const t of ix.writes[i]) weight(t);
      continue;
    }
    for (const t of ix.weightReads[i]) weight(t);
    for (const t of ix.reads[i]) {
      if (usesGen[t] !== gen) {
        usesGen[t] = gen;
        uses[t] = 0;
        const p = producer[t];
        if (p < 0 || inSeg[p] !== gen) live += bytes[t]; // read from outside: live from the start
      }
      uses[t]++;
    }
  }
  // Produced here and handed on (to a later stage or the caller): live to the end.
  const keep = (t: number) => {
    const p = producer[t];
    if (p < 0 || inSeg[p] !== gen) return false;
    if (ix.isOutput[t]) return true;
    for (const c of ix.consumers[t]) if (inSeg[c] !== gen) return true;
    return false;
  };
  let peak = live;
  for (const i of order) {
    if (ix.isConstant[i]) continue;
    for (const t of ix.writes[i]) live += bytes[t];
    peak = Math.max(peak, live);
    for (const t of ix.reads[i]) if (--uses[t] === 0 && !keep(t)) live -= bytes[t];
    // Outputs nobody in the segment reads and nobody outside needs die at once.
    for (const t of ix.writes[i]) if (usesGen[t] !== gen && !keep(t)) live -= bytes[t];
  }
  return { weights, activations: peak };
}
