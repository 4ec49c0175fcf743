import { create } from "@bufbuild/protobuf";
import { type NodeProto, NodeProtoSchema, type TensorProto, TensorProto_DataType as DT } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import { attribute } from "./builder.js";
import type { DType } from "./dtype.js";
import { makeTensor } from "./tensor.js";

/**
 * How a float32 tensor crossing a cut travels: as it is, as float16 (Cast), or as uint8 with a scale and zero
 * point (QuantizeLinear / DequantizeLinear), one pair for the whole tensor or one per channel (axis 1).
 * Every encoding is ONNX operators, so the producer's stage model encodes and each consumer's decodes, at
 * onnxruntime's speed, and frames carry the smaller tensor.
 */
export type EncodingName = "float32" | "float16" | "int8" | "int8-channel";

/** Every encoding, cheapest (fewest bytes) last. */
export const ENCODINGS: readonly EncodingName[] = ["float32", "float16", "int8-channel", "int8"];

/** One cut tensor's encoding, as plans and manifests record it (scale and zero point from calibration). */
export interface TensorEncoding {
  tensor: string;
  encoding: EncodingName;
  /** Quantization step per tensor (one value) or per channel of axis 1 (int8 encodings only). */
  scale?: number[];
  /** uint8 zero point, as many as `scale`. */
  zeroPoint?: number[];
}

const TAG: Record<EncodingName, string> = {
  float32: "",
  float16: "f16",
  int8: "u8",
  "int8-channel": "u8c",
};

const WIRE: Record<EncodingName, DType> = {
  float32: "float32",
  float16: "float16",
  int8: "uint8",
  "int8-channel": "uint8",
};

/** Bytes per element on the wire. */
export function encodedElementBytes(e: EncodingName): number {
  return e === "float32" ? 4 : e === "float16" ? 2 : 1;
}

/** The element type the encoded tensor travels as. */
export function encodedDType(e: EncodingName): DType {
  return WIRE[e];
}

/** The name of the encoded tensor between stages (`X::u8`), or the name itself for float32. */
export function encodedName(tensor: string, e: EncodingName): string {
  return e === "float32" ? tensor : `${tensor}::${TAG[e]}`;
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
  const perChannel = e.encoding === "int8-channel";
  const dims = perChannel ? [e.scale.length] : [];
  return {
    scale: makeTensor(`${e.tensor}::scale`, "float32", dims, Float32Array.from(e.scale)),
    zp: makeTensor(`${e.tensor}::zero`, "uint8", dims, Uint8Array.from(e.zeroPoint)),
    ...(perChannel ? { axis: 1 } : {}),
  };
}

/** The producer's side: `to` (the wire tensor) from the float32 tensor `from`. */
export function encodeNodes(e: TensorEncoding, from: string, to: string): EncodingNodes {
  if (e.encoding === "float32")
    return { nodes: [node("Identity", [from], [to], `${to}::encode`)], initializers: [] };
  if (e.encoding === "float16")
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
  if (e.encoding === "float32")
    return { nodes: [node("Identity", [from], [to], `${to}::decode`)], initializers: [] };
  if (e.encoding === "float16")
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
