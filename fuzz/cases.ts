import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ModelProto, ModelProtoSchema } from "onnx-buf";
import { CleaveError } from "../src/errors.js";
import { buildStages } from "../src/export/stage.js";
import { analyzeModel } from "../src/ir/analyze.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { decodeModel, encodeModel } from "../src/onnx/model-io.js";
import { seededRandom } from "../src/onnx/prng.js";
import { resolveSplit } from "../src/export/split.js";
import { decodeFrame, encodeFrame, frameTensor, tensorFrame } from "../src/runtime/transport/frame.js";
import { ort } from "../src/onnx/ort.js";

/** How one case ended: it worked, it was refused with cleave's own one-line error, or something else broke. */
export type Outcome = { kind: "ok" } | { kind: "refused"; message: string } | { kind: "internal"; message: string };

/** What the fuzzer feeds: mutated ONNX models (through inspect's and split's paths) or mutated frames. */
export type CaseKind = "model" | "frame";

type Rng = () => number;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

/** Small models touching what real exports have: convs, branches, an If, weights built from constants. */
function seedModels(): ModelProto[] {
  const conv = new GraphBuilder("conv", { seed: 1 });
  let h = conv.input("x", "float32", [1, 3, 16, 16]);
  for (let i = 0; i < 3; i++) {
    h = conv.node("Relu", [conv.node("Conv", [h, conv.weight(`w${i}`, [4, i === 0 ? 3 : 4, 3, 3])], { pads: [1, 1, 1, 1] })]);
  }
  const a = conv.node("MaxPool", [h], { kernel_shape: [2, 2], strides: [2, 2] });
  const b = conv.node("AveragePool", [h], { kernel_shape: [2, 2], strides: [2, 2] });
  const cat = conv.node("Concat", [a, b], { axis: 1 });
  const flat = conv.node("Flatten", [cat], { axis: 1 });
  conv.output(conv.node("Gemm", [flat, conv.weight("fc", [10, 512]), conv.weight("fcb", [10], "zeros")], { transB: 1 }));

  const built = new GraphBuilder("built", { seed: 2 });
  const x = built.input("x", "float32", ["batch", 8]);
  const shape = built.ints("shape", [8, 8]);
  const ones = built.node("ConstantOfShape", [shape]);
  const scale = built.node("Mul", [ones, built.weight("s", [8])]);
  const rs = built.node("Reshape", [built.node("MatMul", [x, scale]), built.ints("to", [-1, 2, 4])]);
  built.output(built.node("Softmax", [rs], { axis: -1 }));

  const branchy = new GraphBuilder("if", { seed: 3 });
  const y = branchy.input("y", "float32", [1, 4]);
  const flag = branchy.input("flag", "int64", [1]);
  const cond = branchy.node("Equal", [flag, branchy.ints("one", [1])]);
  const thenB = new GraphBuilder("then", { seed: 4 });
  thenB.output(thenB.node("Relu", [y]));
  const elseB = new GraphBuilder("else", { seed: 5 });
  elseB.output(elseB.node("Sigmoid", [y]));
  const out = branchy.node("If", [cond], { then_branch: thenB.toGraph(), else_branch: elseB.toGraph() });
  branchy.output(branchy.node("MatMul", [out, branchy.weight("m", [4, 4])]));
  return [conv.toModel(), built.toModel(), branchy.toModel()];
}

let seeds: Uint8Array[] | undefined;
function seedBytes(): Uint8Array[] {
  seeds ??= seedModels().map((m) => encodeModel(m));
  return seeds;
}

const HUGE = [0, -1, -7, 1 << 20, 2 ** 31 - 1, 2 ** 31, 2 ** 40, 2 ** 53];
const OPS = ["Conv", "Relu", "Gemm", "MatMul", "Reshape", "Concat", "If", "Loop", "Gather", "Expand", "Tile",
  "ConstantOfShape", "Resize", "Slice", "Split", "Transpose", "NoSuchOp", ""];

/** One structural change of a decoded model: dims, types, ops, attributes, names, versions. */
function mutateStructure(m: ModelProto, rng: Rng): void {
  const g = m.graph;
  if (!g) return;
  const choice = int(rng, 0, 11);
  const node = g.node.length > 0 ? pick(rng, g.node) : undefined;
  const init = g.initializer.length > 0 ? pick(rng, g.initializer) : undefined;
  const vi = [...g.input, ...g.output];
  switch (choice) {
    case 0: {
      const v = vi.length > 0 ? pick(rng, vi) : undefined;
      const t = v?.type?.value.case === "tensorType" ? v.type.value.value : undefined;
      const d = t?.shape?.dim.length ? pick(rng, t.shape.dim) : undefined;
      if (d) d.value = { case: "dimValue", value: BigInt(pick(rng, HUGE)) };
      break;
    }
    case 1:
      if (init && init.dims.length > 0) init.dims[int(rng, 0, init.dims.length - 1)] = BigInt(pick(rng, HUGE));
      break;
    case 2:
      if (init) init.dataType = int(rng, -1, 30);
      break;
    case 3: {
      const v = vi.length > 0 ? pick(rng, vi) : undefined;
      if (v?.type?.value.case === "tensorType") v.type.value.value.elemType = int(rng, -1, 30);
      break;
    }
    case 4:
      if (node) node.opType = pick(rng, OPS);
      break;
    case 5:
      if (node && node.input.length > 0) node.input[int(rng, 0, node.input.length - 1)] = pick(rng, ["", "nowhere", g.output[0]?.name ?? "o"]);
      break;
    case 6:
      if (node && node.output.length > 0) node.output[0] = pick(rng, [g.input[0]?.name ?? "x", "", g.node[0]?.output[0] ?? "t"]);
      break;
    case 7: {
      const a = node && node.attribute.length > 0 ? pick(rng, node.attribute) : undefined;
      if (a) {
        a.ints = a.ints.map(() => BigInt(pick(rng, HUGE)));
        a.i = BigInt(pick(rng, HUGE));
        a.type = int(rng, 0, 14);
      }
      break;
    }
    case 8:
      for (const o of m.opsetImport) o.version = BigInt(pick(rng, [0, 1, 6, 25, 999]));
      break;
    case 9:
      if (init) init.rawData = init.rawData.subarray(0, int(rng, 0, init.rawData.length));
      break;
    case 10:
      if (g.node.length > 1) g.node.reverse();
      if (rng() < 0.5 && node) g.node.push({ ...node });
      break;
    default:
      g.output.splice(0, rng() < 0.5 ? 1 : g.output.length);
  }
}

/** The bytes of model case `i` of a seed: a structural change (re-encoded), flipped bytes, or a truncation. */
export function modelCase(seed: number, i: number): Uint8Array {
  const rng = seededRandom(seed * 1_000_003 + i);
  const base = pick(rng, seedBytes());
  const how = rng();
  if (how < 0.6) {
    const m = fromBinary(ModelProtoSchema, base);
    for (let k = int(rng, 1, 3); k > 0; k--) mutateStructure(m, rng);
    return toBinary(ModelProtoSchema, m);
  }
  const bytes = Uint8Array.from(base);
  if (how < 0.85) {
    for (let k = int(rng, 1, 8); k > 0; k--) bytes[int(rng, 0, bytes.length - 1)] = int(rng, 0, 255);
    return bytes;
  }
  return bytes.subarray(0, int(rng, 0, bytes.length - 1));
}

/** The bytes of frame case `i`: a real tensor or control frame, mutated, or random bytes. */
export function frameCase(seed: number, i: number): Uint8Array {
  const rng = seededRandom(seed * 1_000_033 + i);
  const dims = [1, int(rng, 1, 4), int(rng, 1, 5)];
  const frame =
    rng() < 0.6
      ? tensorFrame(i, `t${i}`, new ort.Tensor("float32", new Float32Array(dims[0] * dims[1] * dims[2]), dims))
      : ({ type: "control", requestId: i, msg: { t: pick(rng, ["load", "ping", "stats", "hello"]), n: i }, payload: Uint8Array.of(1, 2, 3) } as const);
  const parts = encodeFrame(frame);
  const whole = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    whole.set(p, off);
    off += p.byteLength;
  }
  const how = rng();
  if (how < 0.15) return Uint8Array.from({ length: int(rng, 0, 64) }, () => int(rng, 0, 255));
  if (how < 0.3) return whole.subarray(0, int(rng, 0, whole.length));
  const dv = new DataView(whole.buffer);
  if (how < 0.5 && whole.length >= 9) {
    // Header fields set to extremes: ndim, name length, a dim, the JSON length.
    const at = pick(rng, [5, 6, 7, 9, 13]);
    if (at + 4 <= whole.length) dv.setUint32(at, pick(rng, [0, 1, 0xff, 0xffff, 0x7fffffff, 0xffffffff]), true);
    return whole;
  }
  for (let k = int(rng, 1, 6); k > 0; k--) whole[int(rng, 0, whole.length - 1)] = int(rng, 0, 255);
  return whole;
}

function outcomeOf(err: unknown): Outcome {
  if (err instanceof CleaveError) return { kind: "refused", message: err.message.split("\n")[0] };
  const message = err instanceof Error ? `${err.name}: ${err.message}`.split("\n")[0] : String(err);
  return { kind: "internal", message };
}

/** Runs one case as the library's users would: a model through inspect's and split's paths, a frame through the decoder. */
export async function runCase(kind: CaseKind, bytes: Uint8Array): Promise<Outcome> {
  try {
    if (kind === "frame") {
      const f = decodeFrame(bytes);
      if (f.type === "tensor") frameTensor(f);
      return { kind: "ok" };
    }
    const model = await analyzeModel(decodeModel(bytes, { source: "case.onnx" }), { source: "case.onnx" });
    const stages = Math.min(2, model.graph.nodes.filter((n) => !n.isConstant).length);
    if (stages >= 1) for (const s of buildStages(model, resolveSplit(model, { stages }))) encodeModel(s.model);
    return { kind: "ok" };
  } catch (err) {
    return outcomeOf(err);
  }
}
