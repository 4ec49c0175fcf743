/** What crosses between a worker's I/O thread and its stage threads (stage-runner.ts, stage-thread-main.ts). */
import { ort } from "../../onnx/ort.js";

/** A tensor crossing between a worker and a stage thread: its buffer (moved or copied) and where it lies. */
export interface WireTensor {
  name: string;
  type: string;
  dims: number[];
  buffer: ArrayBuffer;
  /** Byte offset of the elements in `buffer`, and their number. */
  offset: number;
  length: number;
}

export type ThreadRequest =
  | { t: "open"; model: Uint8Array | string; threads: number; file: string }
  | { t: "run"; id: number; feeds: WireTensor[]; outputs: string[]; giveBack: ArrayBuffer[] }
  | { t: "close" };

export type ThreadReply =
  | { t: "opened"; inputNames: string[]; outputNames: string[] }
  | { t: "open-failed"; message: string }
  | { t: "ran"; id: number; outputs: WireTensor[]; ms: number; cpuMs: number; giveBack: ArrayBuffer[] }
  | { t: "run-failed"; id: number; message: string; ms: number; cpuMs: number; giveBack: ArrayBuffer[] };

/** CPU time of this process so far (user + system, every thread), ms. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Typed array constructors of the dtypes a tensor frame carries, by onnxruntime's type name. */
function typedView(type: string, buffer: ArrayBuffer, offset: number, length: number): ort.Tensor.DataType {
  switch (type) {
    case "float32":
      return new Float32Array(buffer, offset, length);
    case "float64":
      return new Float64Array(buffer, offset, length);
    case "int8":
      return new Int8Array(buffer, offset, length);
    case "uint8":
    case "bool":
      return new Uint8Array(buffer, offset, length);
    case "int16":
      return new Int16Array(buffer, offset, length);
    case "uint16":
    case "float16":
      return new Uint16Array(buffer, offset, length);
    case "int32":
      return new Int32Array(buffer, offset, length);
    case "uint32":
      return new Uint32Array(buffer, offset, length);
    case "int64":
      return new BigInt64Array(buffer, offset, length);
    case "uint64":
      return new BigUint64Array(buffer, offset, length);
    default:
      throw new Error(`tensors of type ${type} cannot be handed to a stage thread`);
  }
}

/** A tensor as it crosses to or from a stage thread (its buffer moved or copied by postMessage). */
export function wireTensor(name: string, t: ort.Tensor): WireTensor {
  const v = t.data as ArrayBufferView;
  return {
    name,
    type: t.type,
    dims: [...t.dims],
    buffer: v.buffer as ArrayBuffer,
    offset: v.byteOffset,
    length: t.size,
  };
}

/** The onnxruntime tensor of a wire tensor (a view, no copy). */
export function wireToTensor(w: WireTensor): ort.Tensor {
  return new ort.Tensor(w.type as ort.Tensor.Type, typedView(w.type, w.buffer, w.offset, w.length), w.dims);
}
