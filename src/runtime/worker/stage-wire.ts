/** What crosses between a worker's I/O thread and its stage threads (stage-runner.ts, stage-thread-main.ts). */
import { ort } from "../../onnx/ort.js";
import { type DType, dtypeSize } from "../../onnx/dtype.js";
import { bytesAsTyped } from "../../onnx/tensor.js";

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
  | { t: "open"; model: Uint8Array | string; threads: number; file: string; background?: boolean }
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
  const type = w.type as DType;
  const bytes = new Uint8Array(w.buffer, w.offset, w.length * dtypeSize(type));
  return new ort.Tensor(w.type as ort.Tensor.Type, bytesAsTyped(bytes, type) as ort.Tensor.DataType, w.dims);
}
