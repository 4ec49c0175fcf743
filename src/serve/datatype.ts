import type { DType } from "../onnx/dtype.js";

/** A tensor datatype as the Open Inference Protocol (KServe v2) names it. */
export type OipDatatype =
  | "BOOL"
  | "UINT8"
  | "UINT16"
  | "UINT32"
  | "UINT64"
  | "INT8"
  | "INT16"
  | "INT32"
  | "INT64"
  | "FP16"
  | "FP32"
  | "FP64"
  | "BYTES";

const TABLE: ReadonlyArray<[DType, OipDatatype]> = [
  ["bool", "BOOL"],
  ["uint8", "UINT8"],
  ["uint16", "UINT16"],
  ["uint32", "UINT32"],
  ["uint64", "UINT64"],
  ["int8", "INT8"],
  ["int16", "INT16"],
  ["int32", "INT32"],
  ["int64", "INT64"],
  ["float16", "FP16"],
  ["float32", "FP32"],
  ["float64", "FP64"],
  ["string", "BYTES"],
];
const TO_OIP = new Map<DType, OipDatatype>(TABLE);
const FROM_OIP = new Map<string, DType>(TABLE.map(([d, o]) => [o, d]));

/** The protocol datatype of a cleave dtype, or undefined for one the protocol has no name for (bfloat16). */
export function oipDatatype(d: DType): OipDatatype | undefined {
  return TO_OIP.get(d);
}

/** The cleave dtype of a protocol datatype name (case-sensitive, as the protocol says), or undefined. */
export function dtypeOfOip(name: string): DType | undefined {
  return FROM_OIP.get(name);
}
