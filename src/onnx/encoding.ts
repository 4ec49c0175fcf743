import { create } from "@bufbuild/protobuf";
import { type NodeProto, NodeProtoSchema, type TensorProto, TensorProto_DataType as DT } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import { attribute } from "./builder.js";
import type { DType } from "./dtype.js";
import { makeTensor } from "./tensor.js";
import { packedBytes } from "./zero-pack.js";

/**
 * How a float32 tensor crossing a cut travels: as it is, as float16 (Cast), or as uint8 with a scale and zero
 * point (QuantizeLinear / DequantizeLinear), one pair for the whole tensor or one per channel (axis 1).
 * These are ONNX operators, so the producer's stage model encodes and each consumer's decodes, at
 * onnxruntime's speed, and frames carry the smaller tensor.
 */
export type BaseEncoding = "float32" | "float16" | "int8" | "int8-channel";

/**
 * A base encoding, optionally followed by lossless zero packing (`+sparse`): the wire tensor the base leaves
 * is sent as a bitmap of its non-zero elements and those elements (./zero-pack.ts), by the
 * sending worker, whenever that is smaller. `float32+sparse` is the lossless encoding of sparse activations;
 * `int8+sparse` packs the zeros quantization leaves (a zero point of 0: post-ReLU tensors).
 */
export type EncodingName = BaseEncoding | `${BaseEncoding}+sparse`;

/** Every base encoding, cheapest (fewest bytes) last. */
export const BASE_ENCODINGS: readonly BaseEncoding[] = ["float32", "float16", "int8-channel", "int8"];

/** Every encoding: the base ones, then each zero-packed. */
export const ENCODINGS: readonly EncodingName[] = [
  ...BASE_ENCODINGS,
  ...BASE_ENCODINGS.map((e) => `${e}+sparse` as const),
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
export function packedEncoding(e: BaseEncoding): EncodingName {
  return `${e}+sparse`;
}

/** One cut tensor's encoding, as plans and manifests record it (scale and zero point from calibration). */
export interface TensorEncoding {
  tensor: string;
  encoding: EncodingName;
  /** Quantization step per tensor (one value) or per channel of axis 1 (int8 encodings only). */
  scale?: number[];
  /** uint8 zero point, as many as `scale`. */
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
};

const WIRE: Record<BaseEncoding, DType> = {
  float32: "float32",
  float16: "float16",
  int8: "uint8",
  "int8-channel": "uint8",
};

/** Bytes per element of the wire tensor (before any zero packing). */
export function encodedElementBytes(e: EncodingName): number {
  const b = baseEncoding(e);
  return b === "float32" ? 4 : b === "float16" ? 2 : 1;
}

/**
 * Bytes on the wire of `elements` float32 values sent as `e`; zero-packed encodings from the share of
 * non-zero elements (none given: priced as not packed), never above the dense size (the packer sends dense
 * then).
 */
export function wireBytes(e: EncodingName, elements: number, nonZero?: number): number {
  const dense = elements * encodedElementBytes(e);
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
 * Asymmetric uint8 quantization parameters covering [min, max] (widened to hold 0, so zeros stay exact):
 * scale = (max - min) / 255, zero point = round(-min / scale). A range of one value gets scale 1.
 */
export function quantParams(min: number, max: number): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
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
  attrs: Record<string, number> = {},
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
  const perChannel = baseEncoding(e.encoding) === "int8-channel";
  const dims = perChannel ? [e.scale.length] : [];
  return {
    scale: makeTensor(`${e.tensor}::scale`, "float32", dims, Float32Array.from(e.scale)),
    zp: makeTensor(`${e.tensor}::zero`, "uint8", dims, Uint8Array.from(e.zeroPoint)),
    ...(perChannel ? { axis: 1 } : {}),
  };
}

/** The producer's side: `to` (the wire tensor) from the float32 tensor `from`. */
export function encodeNodes(e: TensorEncoding, from: string, to: string): EncodingNodes {
  if (baseEncoding(e.encoding) === "float32")
    return { nodes: [node("Identity", [from], [to], `${to}::encode`)], initializers: [] };
  if (baseEncoding(e.encoding) === "float16")
    return { nodes: [node("Cast", [from], [to], `${to}::encode`, { to: DT.FLOAT16 })], initializers: [] };
  const q = qParams(e);
  return {
    nodes: [
      node(
        "QuantizeLinear",
        [from, q.scale.name, q.zp.name],
        [to],
        `${to}::encode`,
        q.axis !== undefined ? { axis: q.axis } : {},
      ),
    ],
    initializers: [q.scale, q.zp],
  };
}

/** A consumer's side: the float32 tensor `to` from the wire tensor `from`. */
export function decodeNodes(e: TensorEncoding, from: string, to: string): EncodingNodes {
  if (baseEncoding(e.encoding) === "float32")
    return { nodes: [node("Identity", [from], [to], `${to}::decode`)], initializers: [] };
  if (baseEncoding(e.encoding) === "float16")
    return { nodes: [node("Cast", [from], [to], `${to}::decode`, { to: DT.FLOAT })], initializers: [] };
  const q = qParams(e);
  return {
    nodes: [
      node(
        "DequantizeLinear",
        [from, q.scale.name, q.zp.name],
        [to],
        `${to}::decode`,
        q.axis !== undefined ? { axis: q.axis } : {},
      ),
    ],
    initializers: [q.scale, q.zp],
  };
}
