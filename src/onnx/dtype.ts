import { TensorProto_DataType as DT } from "onnx-buf";

/** Element types cleave understands, named as onnxruntime names them. */
export type DType =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int8"
  | "uint8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "bool"
  | "string";

const TABLE: ReadonlyArray<[DType, DT, number]> = [
  ["float32", DT.FLOAT, 4],
  ["float16", DT.FLOAT16, 2],
  ["bfloat16", DT.BFLOAT16, 2],
  ["float64", DT.DOUBLE, 8],
  ["int8", DT.INT8, 1],
  ["uint8", DT.UINT8, 1],
  ["int16", DT.INT16, 2],
  ["uint16", DT.UINT16, 2],
  ["int32", DT.INT32, 4],
  ["uint32", DT.UINT32, 4],
  ["int64", DT.INT64, 8],
  ["uint64", DT.UINT64, 8],
  ["bool", DT.BOOL, 1],
  // Strings have no fixed width; 8 bytes is a nominal per-element figure used only for costing.
  ["string", DT.STRING, 8],
];

const BY_ONNX = new Map<number, DType>(TABLE.map(([d, o]) => [o, d]));
const TO_ONNX = new Map<DType, DT>(TABLE.map(([d, o]) => [d, o]));
const SIZE = new Map<DType, number>(TABLE.map(([d, , s]) => [d, s]));

/** The cleave dtype of an ONNX `TensorProto.DataType` number, or undefined when unsupported. */
export function dtypeFromOnnx(t: number): DType | undefined {
  return BY_ONNX.get(t);
}

/** The ONNX `TensorProto.DataType` number of a dtype. */
export function dtypeToOnnx(d: DType): number {
  return TO_ONNX.get(d)!;
}

/** Bytes per element. */
export function dtypeSize(d: DType): number {
  return SIZE.get(d)!;
}

/** True for a name in the DType union. */
export function isDType(s: string): s is DType {
  return SIZE.has(s as DType);
}

/**
 * The values an integer (or bool) element can hold as a JS number, for checking user-given values: int64 and
 * uint64 up to the largest safe integer.
 */
export const INTEGER_RANGE: Partial<Record<DType, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  bool: [0, 1],
};
