import { create } from "@bufbuild/protobuf";
import { type NodeProto, NodeProtoSchema, type TensorProto, TensorProto_DataType as DT } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import { attribute } from "./builder.js";
import type { DType } from "./dtype.js";
import { makeTensor } from "./tensor.js";
import { packedBytes } from "./zero-pack.js";

/**
 * How a float32 tensor crossing a cut travels: as it is, as float16 (Cast), as uint8 with a scale and zero
 * point (QuantizeLinear / DequantizeLinear), one pair for the whole tensor or one per channel (axis 1), or as
 * 4-bit levels with a scale and zero point (`int4`, `int4-channel`), two to a byte along the last axis.
 * These are ONNX operators, so the producer's stage model encodes and each consumer's decodes, at
 * onnxruntime's speed, and frames carry the smaller tensor. The 4-bit encodings are built from operators of
 * opset 11 (QuantizeLinear, strided Slice and float arithmetic clip and pack a pair, BitShift unpacks it) rather
 * than opset 21's uint4 tensors, so they work in the model's own opset (a stage cannot change its opset
 * without changing what its other operators mean).
 */
export type BaseEncoding = "float32" | "float16" | "int8" | "int8-channel" | "int4" | "int4-channel";

/** Base encodings whose wire elements are whole bytes, so zero packing applies to them. */
export type PackableEncoding = Exclude<BaseEncoding, "int4" | "int4-channel">;

/**
 * A base encoding, optionally followed by lossless zero packing (`+sparse`): the wire tensor the base leaves
 * is sent as a bitmap of its non-zero elements and those elements (./zero-pack.ts), by the
 * sending worker, whenever that is smaller. `float32+sparse` is the lossless encoding of sparse activations;
 * `int8+sparse` packs the zeros quantization leaves (a zero point of 0: post-ReLU tensors).
 */
export type EncodingName = BaseEncoding | `${PackableEncoding}+sparse`;

/** The base encodings zero packing applies to, cheapest (fewest bytes) last. */
export const PACKABLE_ENCODINGS: readonly PackableEncoding[] = ["float32", "float16", "int8-channel", "int8"];

/** Every base encoding, cheapest (fewest bytes) last. */
export const BASE_ENCODINGS: readonly BaseEncoding[] = [...PACKABLE_ENCODINGS, "int4-channel", "int4"];

/** Every encoding: the base ones, then each packable one zero-packed. */
export const ENCODINGS: readonly EncodingName[] = [
  ...BASE_ENCODINGS,
  ...PACKABLE_ENCODINGS.map((e) => `${e}+sparse` as const),
];

/** The base encoding of `e` (what the stage models do to the tensor). */
export function baseEncoding(e: EncodingName): BaseEncoding {
  return (e.endsWith("+sparse") ? e.slice(0, -"+sparse".length) : e) as BaseEncoding;
}

/** True when `e` zero-packs the wire tensor. */
export function isPacked(e: EncodingName): boolean {
  return e.endsWith("+sparse");
}

/** `e` zero-packed. */
export function packedEncoding(e: PackableEncoding): EncodingName {
  return `${e}+sparse`;
}

/** True for the encodings with a scale and zero point per channel of axis 1 (opset 13, rank 2 or more). */
export function isPerChannel(e: EncodingName): boolean {
  const b = baseEncoding(e);
  return b === "int8-channel" || b === "int4-channel";
}

/** True for the 4-bit encodings (two levels to a byte along the last axis). */
export function isFourBit(e: EncodingName): boolean {
  const b = baseEncoding(e);
  return b === "int4" || b === "int4-channel";
}

/** Quantization levels above zero of an encoding with a scale and zero point (255 for 8 bits, 15 for 4). */
export function quantLevels(e: EncodingName): number {
  return isFourBit(e) ? 15 : 255;
}

/** The least opset whose operators express `e` (per channel quantization: 13; 4-bit packing: 11). */
export function minOpset(e: EncodingName): number {
  return isPerChannel(e) ? 13 : isFourBit(e) ? 11 : 1;
}

/** One cut tensor's encoding, as plans and manifests record it (scale and zero point from calibration). */
export interface TensorEncoding {
  tensor: string;
  encoding: EncodingName;
  /** Quantization step per tensor (one value) or per channel of axis 1 (int8 and int4 encodings only). */
  scale?: number[];
  /** Zero point (0..255, or 0..15 for int4), as many as `scale`. */
  zeroPoint?: number[];
  /**
   * Zero-packed encodings: the largest share of the wire tensor's elements that were not zero on the
   * calibration inputs (what its packed size was priced from).
   */
  nonZero?: number;
}

const TAG: Record<BaseEncoding, string> = {
  float32: "",
  float16: "f16",
  int8: "u8",
  "int8-channel": "u8c",
  int4: "u4",
  "int4-channel": "u4c",
};

const WIRE: Record<BaseEncoding, DType> = {
  float32: "float32",
  float16: "float16",
  int8: "uint8",
  "int8-channel": "uint8",
  int4: "uint8",
  "int4-channel": "uint8",
};

/** Bytes per element of the wire tensor (before any zero packing; half a byte for the 4-bit encodings). */
export function encodedElementBytes(e: EncodingName): number {
  const b = baseEncoding(e);
  return b === "float32" ? 4 : b === "float16" ? 2 : isFourBit(b) ? 0.5 : 1;
}

/** True when a tensor shaped `shape` has a last axis of known size for the 4-bit encodings to pack. */
export function packsLastAxis(shape: readonly number[]): boolean {
  const last = shape[shape.length - 1];
  return shape.length > 0 && Number.isInteger(last) && last > 0;
}

/**
 * The shape of the wire tensor of a tensor shaped `shape`: the same, except for the 4-bit encodings, whose
 * last axis holds two levels to a byte (`ceil(last / 2)`). One-line error for a 4-bit encoding of a scalar or
 * of a tensor whose last axis is not known.
 */
export function encodedShape(e: EncodingName, shape: readonly number[], tensor = "tensor"): number[] {
  if (!isFourBit(e)) return [...shape];
  const last = shape[shape.length - 1];
  if (!packsLastAxis(shape))
    throw new ArgumentError(
      `encoding of '${tensor}': ${e} packs the last axis, which needs a tensor of rank 1 or more with a known last dimension (shape [${shape.join("x")}])`,
      { tensor },
    );
  return [...shape.slice(0, -1), Math.ceil(last / 2)];
}

/**
 * Bytes on the wire of `elements` float32 values sent as `e`; zero-packed encodings from the share of
 * non-zero elements (none given: priced as not packed), never above the dense size (the packer sends dense
 * then). A 4-bit encoding packs rows of `lastAxis` levels into `ceil(lastAxis / 2)` bytes (an odd row ends in
 * half a byte of padding: a 7x7 map sends 4 bytes a row, not 3.5); without `lastAxis`, half a byte an element.
 */
export function wireBytes(e: EncodingName, elements: number, nonZero?: number, lastAxis?: number): number {
  const dense =
    isFourBit(e) && lastAxis !== undefined && packsLastAxis([lastAxis])
      ? (elements / lastAxis) * Math.ceil(lastAxis / 2)
      : elements * encodedElementBytes(e);
  if (!isPacked(e) || nonZero === undefined) return dense;
  return Math.min(dense, packedBytes(elements, encodedElementBytes(e), Math.ceil(nonZero * elements)));
}

/** The element type the encoded tensor travels as. */
export function encodedDType(e: EncodingName): DType {
  return WIRE[baseEncoding(e)];
}

/** The name of the encoded tensor between stages (`X::u8`), or the name itself for float32. */
export function encodedName(tensor: string, e: EncodingName): string {
  const b = baseEncoding(e);
  return b === "float32" ? tensor : `${tensor}::${TAG[b]}`;
}

/** Checks an encoding name (a flag or a plan field); the error names the field and lists the known ones. */
export function parseEncodingName(s: string, field = "encoding"): EncodingName {
  if ((ENCODINGS as readonly string[]).includes(s)) return s as EncodingName;
  throw new ArgumentError(`${field}: unknown encoding '${s}' (known: ${ENCODINGS.join(", ")})`, { field });
}

/**
 * Asymmetric quantization parameters covering [min, max] (widened to hold 0, so zeros stay exact) with
 * `levels` steps (255 for uint8, 15 for 4 bits): scale = (max - min) / levels, zero point = round(-min /
 * scale). A range of one value gets scale 1.
 */
export function quantParams(min: number, max: number, levels = 255): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const scale = hi > lo ? (hi - lo) / levels : 1;
  const zeroPoint = Math.min(levels, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** Nodes and initializers that compute `to` from `from` (one direction of an encoding). */
export interface EncodingNodes {
  nodes: NodeProto[];
  initializers: TensorProto[];
}

function node(
  op: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attrs: Record<string, number | string> = {},
) {
  return create(NodeProtoSchema, {
    opType: op,
    input: inputs,
    output: outputs,
    name,
    attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
  });
}

function qParams(e: TensorEncoding): { scale: TensorProto; zp: TensorProto; axis?: number } {
  if (!e.scale || !e.zeroPoint || e.scale.length === 0 || e.scale.length !== e.zeroPoint.length) {
    throw new ArgumentError(`encoding of '${e.tensor}': ${e.encoding} needs as many scales as zero points`, {
      tensor: e.tensor,
    });
  }
  const perChannel = isPerChannel(e.encoding);
  const dims = perChannel ? [e.scale.length] : [];
  return {
    scale: makeTensor(`${e.tensor}::scale`, "float32", dims, Float32Array.from(e.scale)),
    zp: makeTensor(`${e.tensor}::zero`, "uint8", dims, Uint8Array.from(e.zeroPoint)),
    ...(perChannel ? { axis: 1 } : {}),
  };
}

function qAxis(e: TensorEncoding) {
  const q = qParams(e);
  const axis: Record<string, number> = q.axis !== undefined ? { axis: q.axis } : {};
  return { q, axis };
}

/** The encodings of one operator each (all but the 4-bit ones), in either direction; undefined otherwise. */
function oneNode(
  e: TensorEncoding,
  from: string,
  to: string,
  dir: "encode" | "decode",
): EncodingNodes | undefined {
  const b = baseEncoding(e.encoding);
  const name = `${to}::${dir}`;
  if (b === "float32") return { nodes: [node("Identity", [from], [to], name)], initializers: [] };
  if (b === "float16") {
    const cast = { to: dir === "encode" ? DT.FLOAT16 : DT.FLOAT };
    return { nodes: [node("Cast", [from], [to], name, cast)], initializers: [] };
  }
  if (isFourBit(b)) return undefined;
  const { q, axis } = qAxis(e);
  const op = dir === "encode" ? "QuantizeLinear" : "DequantizeLinear";
  return {
    nodes: [node(op, [from, q.scale.name, q.zp.name], [to], name, axis)],
    initializers: [q.scale, q.zp],
  };
}

const int64s = (name: string, v: readonly number[]) =>
  makeTensor(name, "int64", [v.length], BigInt64Array.from(v.map((x) => BigInt(x))));
const uint8s = (name: string, dims: readonly number[], v: readonly number[]) =>
  makeTensor(name, "uint8", dims, Uint8Array.from(v));
/** A Reshape target keeping every axis but the last ones (0 copies the input's dimension). */
const keepLeading = (rank: number, tail: readonly number[]) => [...new Array(rank - 1).fill(0), ...tail];

/** What both directions of a 4-bit encoding need: parameters, the packed shape, names under `to`. */
function fourBitParts(e: TensorEncoding, to: string, shape: readonly number[] | undefined) {
  return { ...qAxis(e), s: fourBitShape(e, shape), t: (x: string) => `${to}::${x}` };
}

type FourBitParts = ReturnType<typeof fourBitParts>;

function fourBitShape(e: TensorEncoding, shape: readonly number[] | undefined) {
  if (!shape)
    throw new ArgumentError(`encoding of '${e.tensor}': ${e.encoding} needs the tensor's shape`, {
      tensor: e.tensor,
    });
  const wire = encodedShape(e.encoding, shape, e.tensor);
  const last = shape[shape.length - 1];
  return { rank: shape.length, last, half: wire[wire.length - 1], odd: last % 2 === 1 };
}

/**
 * The producer's side: `to` (the wire tensor) from the float32 tensor `from`. The 4-bit encodings need the
 * tensor's `shape` (the last axis is packed): levels from QuantizeLinear, the last axis padded to even, each
 * pair (a, b) made one byte 16a + b from its even and odd elements (strided Slice; levels clipped to 15 and
 * the sum taken in float32, exact below 256).
 */
export function encodeNodes(
  e: TensorEncoding,
  from: string,
  to: string,
  shape?: readonly number[],
): EncodingNodes {
  return oneNode(e, from, to, "encode") ?? fourBitEncode(fourBitParts(e, to, shape), from, to);
}

function fourBitEncode({ q, axis, s, t }: FourBitParts, from: string, to: string): EncodingNodes {
  const inits = [
    q.scale,
    q.zp,
    makeTensor(t("fifteen"), "float32", [], Float32Array.from([15])),
    makeTensor(t("sixteen"), "float32", [], Float32Array.from([16])),
    int64s(t("even_start"), [0]),
    int64s(t("odd_start"), [1]),
    int64s(t("end"), [2 * s.half]),
    int64s(t("axis"), [s.rank - 1]),
    int64s(t("step"), [2]),
  ];
  const nodes = [node("QuantizeLinear", [from, q.scale.name, q.zp.name], [t("q")], t("encode"), axis)];
  let levels = t("q");
  if (s.odd) {
    inits.push(int64s(t("pads"), [...new Array(2 * s.rank - 1).fill(0), 1]));
    nodes.push(node("Pad", [levels, t("pads")], [t("even")], t("pad")));
    levels = t("even");
  }
  const slice = (start: string, out: string) =>
    node("Slice", [levels, t(start), t("end"), t("axis"), t("step")], [t(out)], t(out));
  nodes.push(
    slice("even_start", "first"),
    slice("odd_start", "second"),
    node("Cast", [t("first")], [t("first_f")], t("first_float"), { to: DT.FLOAT }),
    node("Cast", [t("second")], [t("second_f")], t("second_float"), { to: DT.FLOAT }),
    // Levels past 15 (inputs beyond the calibrated range) are clipped in float: Clip and Min take uint8 only
    // from opset 12, and a stage keeps its model's opset (PP-OCR's is 11).
    node("Min", [t("first_f"), t("fifteen")], [t("first_c")], t("first_clip")),
    node("Min", [t("second_f"), t("fifteen")], [t("second_c")], t("second_clip")),
    node("Mul", [t("first_c"), t("sixteen")], [t("high")], t("shift")),
    node("Add", [t("high"), t("second_c")], [t("packed")], t("pack")),
    node("Cast", [t("packed")], [to], t("wire"), { to: DT.UINT8 }),
  );
  return { nodes, initializers: inits };
}

/**
 * A consumer's side: the float32 tensor `to` from the wire tensor `from` (`shape`: the tensor's, for the
 * 4-bit encodings: each byte's high and low four bits by BitShift, interleaved back along the last axis).
 */
export function decodeNodes(
  e: TensorEncoding,
  from: string,
  to: string,
  shape?: readonly number[],
): EncodingNodes {
  return oneNode(e, from, to, "decode") ?? fourBitDecode(fourBitParts(e, to, shape), from, to);
}

function fourBitDecode({ q, axis, s, t }: FourBitParts, from: string, to: string): EncodingNodes {
  const inits = [
    q.scale,
    q.zp,
    uint8s(t("four"), [], [4]),
    int64s(t("column"), keepLeading(s.rank, [s.half, 1])),
    int64s(t("flat"), keepLeading(s.rank, [2 * s.half])),
  ];
  const nodes = [
    node("BitShift", [from, t("four")], [t("high")], t("high_bits"), { direction: "RIGHT" }),
    node("BitShift", [from, t("four")], [t("up")], t("low_up"), { direction: "LEFT" }),
    node("BitShift", [t("up"), t("four")], [t("low")], t("low_bits"), { direction: "RIGHT" }),
    node("Reshape", [t("high"), t("column")], [t("high2")], t("high_column")),
    node("Reshape", [t("low"), t("column")], [t("low2")], t("low_column")),
    node("Concat", [t("high2"), t("low2")], [t("pairs")], t("interleave"), { axis: -1 }),
    node("Reshape", [t("pairs"), t("flat")], [t("levels")], t("unpair")),
  ];
  let levels = t("levels");
  if (s.odd) {
    inits.push(int64s(t("start"), [0]), int64s(t("end"), [s.last]), int64s(t("axis"), [s.rank - 1]));
    nodes.push(node("Slice", [levels, t("start"), t("end"), t("axis")], [t("cut")], t("unpad")));
    levels = t("cut");
  }
  nodes.push(node("DequantizeLinear", [levels, q.scale.name, q.zp.name], [to], t("decode"), axis));
  return { nodes, initializers: inits };
}
