import { create } from "@bufbuild/protobuf";
import { GraphProtoSchema, type ModelProto, ModelProtoSchema, type NodeProto } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import { inputFeeds } from "../ir/input-values.js";
import { GraphBuilder, valueInfo } from "../onnx/builder.js";
import {
  BASE_ENCODINGS,
  baseEncoding,
  decodeNodes,
  type EncodingName,
  encodedElementBytes,
  packedEncoding,
  encodedDType,
  encodedName,
  encodedShape,
  encodeNodes,
  isPerChannel,
  PACKABLE_ENCODINGS,
  quantLevels,
  type TensorEncoding,
} from "../onnx/encoding.js";
import { createSession, ort } from "../onnx/ort.js";
import { zeroPack, zeroUnpack } from "../onnx/zero-pack.js";
import { buildZooModel, zooInfo } from "../zoo/index.js";

/** Feeds by input name (onnxruntime tensors). */
export type Feeds = Record<string, ort.Tensor>;

/**
 * What an encoding does to the model's outputs against float32, over a set of inputs. Relative errors are per
 * input: the largest |encoded - float32| over the largest |float32| (`maxRelError`, the worst input), and the
 * summed |difference| over the summed |float32| (`meanRelError`, averaged over inputs). For a classifier
 * (the first float output shaped [N, classes], classes >= 2) `top1` is the share of rows whose arg-max is
 * float32's, and `top5` the share whose top five hold float32's arg-max (with at least 5 classes).
 */
export interface Fidelity {
  maxRelError: number;
  meanRelError: number;
  top1?: number;
  top5?: number;
  /** Rows compared (inputs x batch). */
  samples: number;
}

/** A fidelity budget: every figure given must hold (`top1 >= 0.99`, `maxRelError <= 1e-2`). */
export interface FidelityBudget {
  top1?: number;
  top5?: number;
  maxRelError?: number;
  meanRelError?: number;
}

/** True when `f` meets every figure of the budget. */
export function meetsBudget(f: Fidelity, b: FidelityBudget): boolean {
  if (b.maxRelError !== undefined && !(f.maxRelError <= b.maxRelError)) return false;
  if (b.meanRelError !== undefined && !(f.meanRelError <= b.meanRelError)) return false;
  if (b.top1 !== undefined && !((f.top1 ?? 0) >= b.top1)) return false;
  if (b.top5 !== undefined && !((f.top5 ?? 0) >= b.top5)) return false;
  return true;
}

/** One line: the fidelity figures a budget names (all of them when none is named). */
export function formatFidelity(f: Fidelity): string {
  const parts = [
    `max rel error ${f.maxRelError.toExponential(2)}`,
    `mean ${f.meanRelError.toExponential(2)}`,
  ];
  if (f.top1 !== undefined) parts.push(`top-1 ${(100 * f.top1).toFixed(1)}%`);
  if (f.top5 !== undefined) parts.push(`top-5 ${(100 * f.top5).toFixed(1)}%`);
  return `${parts.join(", ")} (${f.samples} samples)`;
}

/** Calibration and held-out inputs, and whether they were made up (seeded random) rather than given. */
export interface CalibrationInputs {
  calibration: Feeds[];
  held: Feeds[];
  generated: boolean;
}

/**
 * Inputs for calibration: the given ones (checked against the model's input shapes and types; one-line errors
 * name the input and the file), split into calibration (the first half, at least one) and held-out (the rest);
 * otherwise `count` seeded inputs of each kind (seeds 1000+ and 2000+; see `inputFeeds`), marked generated.
 */
export function calibrationInputs(
  model: AnalyzedModel,
  given?: ReadonlyArray<{ feeds: Feeds; source: string }>,
  count = 8,
): CalibrationInputs {
  if (!given || given.length === 0) {
    const make = (base: number) => Array.from({ length: count }, (_, k) => inputFeeds(model, base + 10 * k));
    return { calibration: make(1000), held: make(2000), generated: true };
  }
  for (const { feeds, source } of given) {
    for (const v of model.graph.inputs) {
      const t = model.types.get(v.name);
      const f = feeds[v.name];
      if (!f) {
        if (model.inputValues.has(v.name)) continue;
        throw new ArgumentError(`${source}: calibration input '${v.name}' is missing`, {
          file: source,
          tensor: v.name,
        });
      }
      if (
        t &&
        (f.type !== t.dtype || f.dims.length !== t.shape.length || f.dims.some((d, i) => d !== t.shape[i]))
      )
        throw new ArgumentError(
          `${source}: calibration input '${v.name}' is ${f.type} [${f.dims.join("x")}], the model takes ${t.dtype} [${t.shape.join("x")}]`,
          { file: source, tensor: v.name },
        );
    }
  }
  const withValues = given.map(({ feeds }) => ({ ...inputFeeds(model), ...feeds }));
  const half = Math.max(1, Math.ceil(withValues.length / 2));
  return { calibration: withValues.slice(0, half), held: withValues.slice(half), generated: false };
}

/** Value range of a tensor over the calibration inputs: overall and per channel of axis 1 (rank >= 2). */
export interface TensorRange {
  min: number;
  max: number;
  channelMin?: number[];
  channelMax?: number[];
  /** The largest share of its elements not zero on any one calibration input (zero packing's size). */
  nonZero?: number;
}

/**
 * The model with encode -> decode inserted on the given tensors, so running it shows what the encodings do
 * to the outputs. `readers`, per tensor, the node indices that read the decoded copy (default: every node
 * reading it: in a split, the consumer stages' nodes); the rest keep the float32 original. Graph outputs are
 * never rewritten.
 */
export function withEncodings(
  model: AnalyzedModel,
  encodings: readonly TensorEncoding[],
  readers?: ReadonlyMap<string, ReadonlySet<number>>,
): ModelProto {
  const src = model.graph.model;
  const g = src.graph!;
  // Zero packing is lossless: only the base encoding changes values.
  const byTensor = new Map(
    encodings.filter((e) => baseEncoding(e.encoding) !== "float32").map((e) => [e.tensor, e]),
  );
  const decoded = (t: string) => `${t}::decoded`;
  const pairOf = (e: TensorEncoding): NodeProto[] => {
    const wire = encodedName(e.tensor, e.encoding);
    const shape = model.types.get(e.tensor)?.shape;
    const enc = encodeNodes(e, e.tensor, wire, shape);
    const dec = decodeNodes(e, wire, decoded(e.tensor), shape);
    inits.push(
      ...enc.initializers,
      ...dec.initializers.filter((t) => !enc.initializers.some((x) => x.name === t.name)),
    );
    return [...enc.nodes, ...dec.nodes];
  };
  const inits = [...g.initializer];
  const nodes: NodeProto[] = [];
  for (const v of model.graph.inputs) {
    const e = byTensor.get(v.name);
    if (e) nodes.push(...pairOf(e));
  }
  for (const n of model.graph.nodes) {
    const rewritten = n.proto.input.map((name) => {
      const e = byTensor.get(name);
      if (!e) return name;
      const r = readers?.get(name);
      return !r || r.has(n.index) ? decoded(name) : name;
    });
    nodes.push({ ...n.proto, input: rewritten });
    for (const o of n.outputs) {
      const e = byTensor.get(o);
      if (e) nodes.push(...pairOf(e));
    }
  }
  return create(ModelProtoSchema, {
    ...src,
    graph: create(GraphProtoSchema, { ...g, node: nodes, initializer: inits }),
  });
}

/**
 * Runs a model and its encoded copies on calibration inputs with onnxruntime, and compares outputs with
 * float32's. Float32 outputs are computed once per input set; sessions are released after each call.
 */
export class Calibrator {
  private reference = new Map<"calibration" | "held", Feeds[]>();
  /** Measured fidelities and ranges, kept for the calibrator's life (re-planning reuses them). */
  private fidelities = new Map<string, Fidelity>();
  private rangeOf = new Map<string, TensorRange>();
  /** How many fidelities were measured (not read from the cache), for tests and benches. */
  measured = 0;

  /** `threads`: onnxruntime intra-op threads per session (default 1). */
  constructor(
    readonly model: AnalyzedModel,
    readonly inputs: CalibrationInputs,
    private readonly threads = 1,
  ) {}

  private async run(proto: ModelProto, set: Feeds[], extra: readonly string[] = []): Promise<Feeds[]> {
    let m = proto;
    if (extra.length > 0) {
      const g = m.graph!;
      const outs = extra.map((name) => {
        const t = this.model.types.get(name);
        return t ? valueInfo(name, t.dtype, t.shape) : valueInfo(name, "float32");
      });
      m = create(ModelProtoSchema, {
        ...m,
        graph: create(GraphProtoSchema, { ...g, output: [...g.output, ...outs] }),
      });
    }
    const session = await createSession(m, { threads: this.threads, source: "calibration" });
    try {
      const out: Feeds[] = [];
      for (const feeds of set) out.push((await session.run(feeds)) as Feeds);
      return out;
    } finally {
      await session.release();
    }
  }

  private async ref(which: "calibration" | "held"): Promise<Feeds[]> {
    let r = this.reference.get(which);
    if (!r) {
      r = await this.run(this.model.graph.model, this.inputs[which]);
      this.reference.set(which, r);
    }
    return r;
  }

  /** Ranges of float32 tensors over the calibration inputs (graph inputs and node outputs). */
  async ranges(tensors: readonly string[]): Promise<Map<string, TensorRange>> {
    const missing = tensors.filter((t) => !this.rangeOf.has(t));
    if (missing.length > 0) for (const [t, r] of await this.measureRanges(missing)) this.rangeOf.set(t, r);
    return new Map(tensors.map((t) => [t, this.rangeOf.get(t)!]));
  }

  private async measureRanges(tensors: readonly string[]): Promise<Map<string, TensorRange>> {
    const inputs = new Set(this.model.graph.inputs.map((v) => v.name));
    const outputs = new Set(this.model.graph.outputs.map((v) => v.name));
    const extra = tensors.filter((t) => !inputs.has(t) && !outputs.has(t));
    const runs = await this.run(this.model.graph.model, this.inputs.calibration, extra);
    const out = new Map<string, TensorRange>();
    for (const name of tensors) {
      const t = this.model.types.get(name);
      const r: TensorRange = { min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
      const channels = t && t.shape.length >= 2 ? t.shape[1] : 0;
      const inner = t && channels > 0 ? t.shape.slice(2).reduce((a, b) => a * b, 1) : 1;
      if (channels > 0) {
        r.channelMin = new Array(channels).fill(Number.POSITIVE_INFINITY);
        r.channelMax = new Array(channels).fill(Number.NEGATIVE_INFINITY);
      }
      this.inputs.calibration.forEach((feeds, k) => {
        const x = (inputs.has(name) ? feeds[name] : runs[k][name])?.data as Float32Array | undefined;
        if (!x) return;
        let nonZero = 0;
        for (let i = 0; i < x.length; i++) {
          const v = x[i];
          if (v !== 0) nonZero++;
          if (v < r.min) r.min = v;
          if (v > r.max) r.max = v;
          if (r.channelMin) {
            const c = Math.floor(i / inner) % channels;
            if (v < r.channelMin[c]) r.channelMin[c] = v;
            if (v > r.channelMax![c]) r.channelMax![c] = v;
          }
        }
        if (x.length > 0) r.nonZero = Math.max(r.nonZero ?? 0, nonZero / x.length);
      });
      out.set(name, r);
    }
    return out;
  }

  /** Fidelity of the model with these encodings (see {@link withEncodings}) on one input set. */
  async fidelity(
    encodings: readonly TensorEncoding[],
    which: "calibration" | "held" = "calibration",
    readers?: ReadonlyMap<string, ReadonlySet<number>>,
  ): Promise<Fidelity> {
    // Zero packing is lossless: measured as the base encoding (one entry for both).
    encodings = encodings.map(({ nonZero: _, ...e }) => ({ ...e, encoding: baseEncoding(e.encoding) }));
    const key = JSON.stringify([
      which,
      [...encodings].sort((a, b) => (a.tensor < b.tensor ? -1 : 1)),
      readers ? [...readers].map(([t, r]) => [t, [...r].sort((a, b) => a - b)]).sort() : null,
    ]);
    const known = this.fidelities.get(key);
    if (known) return known;
    const want = await this.ref(which);
    if (encodings.every((e) => e.encoding === "float32")) return compareOutputs(this.model, want, want);
    const got = await this.run(withEncodings(this.model, encodings, readers), this.inputs[which]);
    const f = compareOutputs(this.model, want, got);
    this.measured++;
    this.fidelities.set(key, f);
    return f;
  }
}

/** True when the model's first float output is shaped [N, classes] with classes >= 2 (a classifier's logits). */
export function isClassifier(model: AnalyzedModel): boolean {
  const first = model.graph.outputs.map((v) => model.types.get(v.name)).find((t) => t?.dtype === "float32");
  return first !== undefined && first.shape.length === 2 && first.shape[1] >= 2;
}

/** Compares runs output by output (float32 outputs only); see {@link Fidelity}. */
export function compareOutputs(
  model: AnalyzedModel,
  want: readonly Feeds[],
  got: readonly Feeds[],
): Fidelity {
  const names = model.graph.outputs.map((v) => v.name).filter((n) => model.types.get(n)?.dtype === "float32");
  let maxRel = 0;
  let meanRel = 0;
  let top1 = 0;
  let top5 = 0;
  let rows = 0;
  const classifier = isClassifier(model);
  for (let k = 0; k < want.length; k++) {
    let diffMax = 0;
    let scaleMax = 0;
    let diffSum = 0;
    let scaleSum = 0;
    for (const name of names) {
      const a = want[k][name].data as Float32Array;
      const b = got[k][name].data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        const s = Math.abs(a[i]);
        if (d > diffMax || Number.isNaN(d)) diffMax = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
        if (s > scaleMax) scaleMax = s;
        diffSum += d;
        scaleSum += s;
      }
    }
    maxRel = Math.max(maxRel, scaleMax > 0 ? diffMax / scaleMax : diffMax);
    meanRel += scaleSum > 0 ? diffSum / scaleSum : diffSum;
    if (classifier) {
      const t = want[k][names[0]];
      const [n, c] = t.dims as readonly number[];
      const a = t.data as Float32Array;
      const b = got[k][names[0]].data as Float32Array;
      for (let r = 0; r < n; r++) {
        const row = (x: Float32Array) => x.subarray(r * c, (r + 1) * c);
        const best = argmax(row(a));
        const order = topK(row(b), 5);
        if (order[0] === best) top1++;
        if (order.includes(best)) top5++;
        rows++;
      }
    }
  }
  const samples = classifier ? rows : want.length;
  return {
    maxRelError: maxRel,
    meanRelError: want.length > 0 ? meanRel / want.length : 0,
    ...(classifier ? { top1: top1 / Math.max(1, rows) } : {}),
    ...(classifier && firstClasses(model) >= 5 ? { top5: top5 / Math.max(1, rows) } : {}),
    samples,
  };
}

function firstClasses(model: AnalyzedModel): number {
  const first = model.graph.outputs.map((v) => model.types.get(v.name)).find((t) => t?.dtype === "float32");
  return first?.shape[1] ?? 0;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function topK(x: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    idx.push(i);
    idx.sort((p, q) => x[q] - x[p]);
    if (idx.length > k) idx.pop();
  }
  return idx;
}

/**
 * This machine's float32 rate on one onnxruntime thread, MAC/s, measured as cluster files state a device's
 * throughput: the zoo's resnet18 (its reference MACs) over the median of `runs` whole-model runs after one
 * warm-up. Processors differ between machines, so codec times measured here are scaled by this, never by a
 * constant.
 */
export async function measureHostMacsPerSecond(runs = 5): Promise<number> {
  const info = zooInfo("resnet18");
  const session = await createSession(buildZooModel("resnet18"), { source: "host speed (resnet18)" });
  try {
    const n = info.inputShape.reduce((a, b) => a * b, 1);
    const feed = new ort.Tensor("float32", new Float32Array(n).fill(0.5), info.inputShape);
    const name = session.inputNames[0];
    await session.run({ [name]: feed });
    const ts: number[] = [];
    for (let k = 0; k < runs; k++) {
      const t0 = performance.now();
      await session.run({ [name]: feed });
      ts.push(performance.now() - t0);
    }
    ts.sort((a, b) => a - b);
    return (info.gmacs * 1e9) / (ts[Math.floor(ts.length / 2)] / 1000);
  } finally {
    await session.release();
  }
}

/**
 * Encode and decode time per element of each encoding on one onnxruntime thread of this machine, s: each
 * direction run alone on a [1, 64, 64, 64] float32 tensor (262,144 elements), the median of `runs`; with the
 * machine's own MAC rate ({@link measureHostMacsPerSecond}) to scale them to other devices.
 */
export async function measureCodecTimes(runs = 15): Promise<CodecTimesMeasured> {
  const shape = [1, 64, 64, 64];
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.max(0, Math.sin(i * 0.37));
  const out: CodecTimesMeasured = { hostMacsPerSecond: await measureHostMacsPerSecond() };
  for (const e of BASE_ENCODINGS) {
    if (e === "float32") continue;
    const params = isPerChannel(e) ? 64 : 1;
    const enc: TensorEncoding = {
      tensor: "x",
      encoding: e,
      ...(e === "float16"
        ? {}
        : { scale: new Array(params).fill(1 / quantLevels(e)), zeroPoint: new Array(params).fill(0) }),
    };
    const wire = encodedName("x", e);
    const time = async (dir: "encode" | "decode"): Promise<number> => {
      const b = new GraphBuilder(`codec_${e}_${dir}`);
      const inName = dir === "encode" ? "x" : wire;
      const outName = dir === "encode" ? wire : "y";
      const wireShape = encodedShape(e, shape);
      b.input(inName, dir === "encode" ? "float32" : encodedDType(e), dir === "encode" ? shape : wireShape);
      const made = dir === "encode" ? encodeNodes(enc, "x", wire, shape) : decodeNodes(enc, wire, "y", shape);
      b.nodes.push(...made.nodes);
      b.initializers.push(...made.initializers);
      b.output(outName, dir === "encode" ? encodedDType(e) : "float32", dir === "encode" ? wireShape : shape);
      const session = await createSession(b.toModel(), { source: "codec timing" });
      try {
        const feed = dir === "encode" ? new ort.Tensor("float32", x, shape) : await encodeOnce(enc, x, shape);
        const ts: number[] = [];
        for (let k = 0; k < runs; k++) {
          const t0 = performance.now();
          await session.run({ [inName]: feed });
          ts.push(performance.now() - t0);
        }
        ts.sort((a, b2) => a - b2);
        return ts[Math.floor(ts.length / 2)] / 1000 / n;
      } finally {
        await session.release();
      }
    };
    out[e] = { encode: await time("encode"), decode: await time("decode") };
  }
  // Zero packing runs in the worker's JS, after the base encoding: timed on the same tensor (about half
  // zeros) at each wire width, and added to the base's time.
  const bytes = new Uint8Array(x.buffer);
  for (const base of PACKABLE_ENCODINGS) {
    const width = encodedElementBytes(base);
    const wire = new Uint8Array(n * width);
    for (let i = 0; i < n; i++) if (x[i] !== 0) wire.set(bytes.subarray(4 * i, 4 * i + width), i * width);
    const packed = zeroPack(wire, width)!;
    const median = (fn: () => unknown) => {
      const ts: number[] = [];
      for (let k = 0; k < runs; k++) {
        const t0 = performance.now();
        fn();
        ts.push(performance.now() - t0);
      }
      ts.sort((a, b) => a - b);
      return ts[Math.floor(ts.length / 2)] / 1000 / n;
    };
    const pack = median(() => zeroPack(wire, width));
    const unpack = median(() => zeroUnpack(packed, n, width));
    const t = base === "float32" ? { encode: 0, decode: 0 } : out[base]!;
    out[packedEncoding(base) as Exclude<EncodingName, "float32">] = {
      encode: t.encode + pack,
      decode: t.decode + unpack,
    };
  }
  return out;
}

/** Codec times as {@link measureCodecTimes} returns them (s per element, by encoding). */
export type CodecTimesMeasured = Partial<
  Record<Exclude<EncodingName, "float32">, { encode: number; decode: number }>
> & { hostMacsPerSecond?: number };

async function encodeOnce(enc: TensorEncoding, x: Float32Array, shape: number[]): Promise<ort.Tensor> {
  const wire = encodedName("x", enc.encoding);
  const b = new GraphBuilder("codec_encode_once");
  b.input("x", "float32", shape);
  const made = encodeNodes(enc, "x", wire, shape);
  b.nodes.push(...made.nodes);
  b.initializers.push(...made.initializers);
  b.output(wire, encodedDType(enc.encoding), encodedShape(enc.encoding, shape));
  const session = await createSession(b.toModel(), { source: "codec timing" });
  try {
    return (await session.run({ x: new ort.Tensor("float32", x, shape) }))[wire] as ort.Tensor;
  } finally {
    await session.release();
  }
}
