import { create } from "@bufbuild/protobuf";
import {
  type TensorProto,
  TensorProto_DataLocation,
  TensorProto_DataType as DT,
  TensorProtoSchema,
} from "onnx-buf";
import { type DType, dtypeFromOnnx, dtypeSize, dtypeToOnnx } from "./dtype.js";

/** Typed arrays a tensor's data can be viewed as. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Dimensions of a TensorProto as plain numbers. */
export function tensorDims(t: TensorProto): number[] {
  return t.dims.map((d) => Number(d));
}

/** Element count of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The dtype of a TensorProto; throws for element types cleave does not support. */
export function tensorDType(t: TensorProto): DType {
  const d = dtypeFromOnnx(t.dataType);
  if (d === undefined) throw new Error(`tensor '${t.name}' has unsupported data type ${t.dataType}`);
  return d;
}

/**
 * What is wrong with a stored tensor, in a few words, or undefined when nothing is: an unknown element type,
 * a dimension that is negative or not an integer, or data whose length does not match its dimensions.
 */
export function tensorProblem(t: TensorProto): string | undefined {
  const dtype = dtypeFromOnnx(t.dataType);
  if (dtype === undefined) return `unsupported data type ${t.dataType}`;
  const dims = tensorDims(t);
  const bad = dims.find((d) => !Number.isSafeInteger(d) || d < 0);
  if (bad !== undefined) return `dimension ${bad} is not a size`;
  if (dtype === "string") return undefined;
  const n = numel(dims);
  if (t.rawData.length > 0) {
    const want = n * dtypeSize(dtype);
    return t.rawData.length === want
      ? undefined
      : `holds ${t.rawData.length} bytes of data, its shape [${dims.join(", ")}] needs ${want}`;
  }
  const count = typedFieldLength(t);
  // External data not attached yet is checked when it is.
  if (count === 0 && t.dataLocation === TensorProto_DataLocation.EXTERNAL) return undefined;
  return count === n ? undefined : `holds ${count} values, its shape [${dims.join(", ")}] needs ${n}`;
}

/** Number of values in the typed repeated field a tensor of its type stores its data in. */
function typedFieldLength(t: TensorProto): number {
  switch (t.dataType) {
    case DT.FLOAT:
    case DT.COMPLEX64:
      return t.floatData.length;
    case DT.DOUBLE:
    case DT.COMPLEX128:
      return t.doubleData.length;
    case DT.INT64:
      return t.int64Data.length;
    case DT.UINT64:
    case DT.UINT32:
      return t.uint64Data.length;
    default:
      return t.int32Data.length;
  }
}

/** Stored size of a tensor's data in bytes (what it costs in a model file). */
export function tensorByteLength(t: TensorProto): number {
  if (t.rawData.length > 0) return t.rawData.length;
  return numel(tensorDims(t)) * dtypeSize(tensorDType(t));
}

/**
 * The tensor's little-endian bytes. For `raw_data` tensors (what exporters write for weights) this is a
 * zero-copy view into the model buffer; the typed repeated fields are packed into a new buffer.
 */
export function tensorBytes(t: TensorProto): Uint8Array {
  if (t.rawData.length > 0 || numel(tensorDims(t)) === 0) return t.rawData;
  const dtype = tensorDType(t);
  const n = numel(tensorDims(t));
  const out = new Uint8Array(n * dtypeSize(dtype));
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    switch (t.dataType) {
      case DT.FLOAT:
        dv.setFloat32(i * 4, t.floatData[i], true);
        break;
      case DT.DOUBLE:
        dv.setFloat64(i * 8, t.doubleData[i], true);
        break;
      case DT.INT64:
        dv.setBigInt64(i * 8, t.int64Data[i], true);
        break;
      case DT.UINT64:
        dv.setBigUint64(i * 8, t.uint64Data[i], true);
        break;
      case DT.UINT32:
        dv.setUint32(i * 4, Number(t.uint64Data[i]), true);
        break;
      case DT.INT32:
        dv.setInt32(i * 4, t.int32Data[i], true);
        break;
      case DT.INT16:
      case DT.UINT16:
      case DT.FLOAT16:
      case DT.BFLOAT16:
        dv.setUint16(i * 2, t.int32Data[i] & 0xffff, true);
        break;
      case DT.INT8:
      case DT.UINT8:
      case DT.BOOL:
        out[i] = t.int32Data[i] & 0xff;
        break;
      default:
        throw new Error(`tensor '${t.name}': cannot read data of type ${dtype}`);
    }
  }
  return out;
}

/** A typed-array view of the tensor's data (copied only when the bytes are unaligned). */
export function tensorTypedArray(t: TensorProto): TypedArray {
  const bytes = tensorBytes(t);
  return bytesAsTyped(bytes, tensorDType(t));
}

/** Views little-endian bytes as the typed array of a dtype, copying only to fix alignment. */
export function bytesAsTyped(bytes: Uint8Array, dtype: DType): TypedArray {
  const size = dtypeSize(dtype);
  // A fresh Uint8Array, not bytes.slice(): on a Node Buffer slice() is a view with the same bad offset.
  const b = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes);
  const n = b.byteLength / size;
  switch (dtype) {
    case "float32":
      return new Float32Array(b.buffer, b.byteOffset, n);
    case "float64":
      return new Float64Array(b.buffer, b.byteOffset, n);
    case "int8":
      return new Int8Array(b.buffer, b.byteOffset, n);
    case "uint8":
    case "bool":
      return new Uint8Array(b.buffer, b.byteOffset, n);
    case "int16":
      return new Int16Array(b.buffer, b.byteOffset, n);
    case "uint16":
    case "float16":
    case "bfloat16":
      return new Uint16Array(b.buffer, b.byteOffset, n);
    case "int32":
      return new Int32Array(b.buffer, b.byteOffset, n);
    case "uint32":
      return new Uint32Array(b.buffer, b.byteOffset, n);
    case "int64":
      return new BigInt64Array(b.buffer, b.byteOffset, n);
    case "uint64":
      return new BigUint64Array(b.buffer, b.byteOffset, n);
    case "string":
      throw new Error("string tensors have no typed-array view");
  }
}

/** Small integer or float tensor as JS numbers (for shape arithmetic; never call on weights). */
export function tensorToNumbers(t: TensorProto): number[] {
  const arr = tensorTypedArray(t);
  return Array.from(arr as ArrayLike<number | bigint>, (v) => Number(v));
}

/** A new TensorProto holding `data` as raw little-endian bytes. */
export function makeTensor(
  name: string,
  dtype: DType,
  dims: readonly number[],
  data: TypedArray,
): TensorProto {
  const raw = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  return create(TensorProtoSchema, {
    name,
    dataType: dtypeToOnnx(dtype),
    dims: dims.map((d) => BigInt(d)),
    rawData: raw,
  });
}
