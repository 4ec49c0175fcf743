import { RuntimeFault } from "../../errors.js";
import { type DType, dtypeFromOnnx, dtypeSize, dtypeToOnnx, isDType } from "../../onnx/dtype.js";
import { ort } from "../../onnx/ort.js";
import { bytesAsTyped, numel } from "../../onnx/tensor.js";
import { zeroPack, zeroUnpack } from "../../onnx/zero-pack.js";

/**
 * Binary frames: the unit every transport carries. Two kinds:
 *
 * - tensor frame: `u8 type=1 | u32 requestId | u8 dtype (ONNX code) | u8 ndim | u16 nameLength |
 *   u8 pathLength | u32 epoch | ndim x u32 dims | pathLength x u8 path | name (UTF-8) | zero padding to a
 *   multiple of 8 bytes | raw little-endian tensor bytes`. Tensors never travel as JSON numbers or base64. The path is
 *   the request's route through replicated stages: entry s is the replica (index in stage s's group) that
 *   runs stage s for this request; it is empty when no stage is replicated (every stage's replica 0).
 * - packed tensor frame: the same with `type=3`, and the tensor bytes zero-packed (a bitmap of the non-zero
 *   elements, then those elements: onnx/zero-pack.ts), for sparse tensors a plan sends packed. The receiver
 *   unpacks it, so what it hands on is an ordinary tensor frame.
 * - control frame: `u8 type=2 | u32 requestId | u32 epoch | u32 jsonLength | JSON message | payload bytes`,
 *   for handshakes, stage deployment (the payload is the stage model) and errors.
 *
 * The epoch (u32) is the deployment a request frame belongs to: the coordinator's control loop numbers each
 * deployment it makes (0 outside one), workers stamp it on everything they send for that deployment, and both
 * sides drop a request's frames whose epoch is not the one they run, so outputs that arrive late from a
 * deployment that was replaced are never taken for the new one's.
 *
 * All integers are little-endian. A transport adds its own message boundary (a u32 length prefix on TCP,
 * one binary message on WebSocket) and refuses frames above its maximum size.
 */
export type Frame = TensorFrame | ControlFrame;

/** A tensor of one request, as raw bytes. */
export interface TensorFrame {
  type: "tensor";
  /** Request id (u32) the tensor belongs to. */
  requestId: number;
  /** Deployment epoch (u32) of the request; absent: 0. */
  epoch?: number;
  name: string;
  dtype: DType;
  shape: number[];
  /** Raw little-endian element bytes; exactly numel(shape) * dtypeSize(dtype) long. */
  data: Uint8Array;
  /**
   * Replica of each stage chosen for this request (entry s: index in stage s's replica group; at most
   * MAX_PATH entries); absent or empty: replica 0 of every stage. A decoded path is a copy (never a view).
   */
  path?: Uint8Array;
  /**
   * The tensor's bytes zero-packed ({@link packTensorFrame}): sent instead of `data` (as a packed frame).
   * Decoded frames never have it (they hold the unpacked bytes).
   */
  packed?: Uint8Array;
}

/** A control message (JSON) with optional raw payload bytes. */
export interface ControlFrame {
  type: "control";
  /** Request id (u32) the message is about; 0 when none. */
  requestId: number;
  /** Deployment epoch (u32) the message belongs to; absent: 0. */
  epoch?: number;
  msg: ControlMessage;
  payload?: Uint8Array;
}

/** A control message: a JSON object with a string tag `t`. */
export interface ControlMessage {
  t: string;
  [key: string]: unknown;
}

const TYPE_TENSOR = 1;
const TYPE_CONTROL = 2;
const TYPE_PACKED = 3;
/** Bytes of a tensor frame's header before its dims, and of a control frame's before its JSON. */
const TENSOR_FIXED = 14;
const CONTROL_FIXED = 13;
const MAX_NDIM = 255;
/** Most stages a request path can name (its length travels in one byte). */
export const MAX_PATH = 255;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Default largest frame a transport accepts: 256 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

/**
 * Encodes a frame as parts to write in order (header, then the data without copying it).
 * `frameSize(parts)` is the frame's length in bytes.
 */
export function encodeFrame(frame: Frame): Uint8Array[] {
  if (frame.type === "tensor") {
    const name = enc.encode(frame.name);
    const nd = frame.shape.length;
    if (nd > MAX_NDIM)
      throw new RuntimeFault("RUNTIME", `tensor '${frame.name}': rank ${nd} exceeds ${MAX_NDIM}`);
    if (!isSendable(frame.dtype)) throw unsendable(frame.name, frame.dtype);
    const path = frame.path;
    const np = path?.length ?? 0;
    if (np > MAX_PATH)
      throw new RuntimeFault("RUNTIME", `tensor '${frame.name}': a path of ${np} stages exceeds ${MAX_PATH}`);
    const expected = numel(frame.shape) * dtypeSize(frame.dtype);
    if (frame.data.byteLength !== expected)
      throw new RuntimeFault(
        "RUNTIME",
        `tensor '${frame.name}': ${frame.data.byteLength} data bytes for shape [${frame.shape}] ${frame.dtype} (expected ${expected})`,
        { tensor: frame.name },
      );
    const raw = TENSOR_FIXED + 4 * nd + np + name.length;
    const headerLen = Math.ceil(raw / 8) * 8;
    const h = new Uint8Array(headerLen);
    const dv = new DataView(h.buffer);
    h[0] = frame.packed ? TYPE_PACKED : TYPE_TENSOR;
    dv.setUint32(1, frame.requestId >>> 0, true);
    h[5] = dtypeToOnnx(frame.dtype);
    h[6] = nd;
    dv.setUint16(7, name.length, true);
    h[9] = np;
    dv.setUint32(10, (frame.epoch ?? 0) >>> 0, true);
    for (let i = 0; i < nd; i++) dv.setUint32(TENSOR_FIXED + 4 * i, frame.shape[i], true);
    if (path && np > 0) h.set(path, TENSOR_FIXED + 4 * nd);
    h.set(name, TENSOR_FIXED + 4 * nd + np);
    const body = frame.packed ?? frame.data;
    return body.byteLength > 0 ? [h, body] : [h];
  }
  const json = enc.encode(JSON.stringify(frame.msg));
  const h = new Uint8Array(CONTROL_FIXED + json.length);
  const dv = new DataView(h.buffer);
  h[0] = TYPE_CONTROL;
  dv.setUint32(1, frame.requestId >>> 0, true);
  dv.setUint32(5, (frame.epoch ?? 0) >>> 0, true);
  dv.setUint32(9, json.length, true);
  h.set(json, CONTROL_FIXED);
  return frame.payload && frame.payload.byteLength > 0 ? [h, frame.payload] : [h];
}

/** Total length of encoded parts, bytes. */
export function frameSize(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  return n;
}

function malformed(why: string): RuntimeFault {
  return new RuntimeFault("RUNTIME", `malformed frame: ${why}`);
}

/**
 * Decodes one frame. Tensor data and payloads are views into `buf` (no copy), except a packed tensor's, which
 * is unpacked into a fresh buffer of at most `maxUnpackedBytes`. Throws a RuntimeFault for a malformed frame.
 */
export function decodeFrame(buf: Uint8Array, maxUnpackedBytes = DEFAULT_MAX_FRAME_BYTES): Frame {
  if (buf.byteLength < CONTROL_FIXED) throw malformed(`${buf.byteLength} bytes is shorter than any header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const requestId = dv.getUint32(1, true);
  if (buf[0] === TYPE_TENSOR || buf[0] === TYPE_PACKED) {
    const dtype = dtypeFromOnnx(buf[5]);
    if (dtype === undefined || dtype === "string") throw malformed(`unknown dtype code ${buf[5]}`);
    if (buf.byteLength < TENSOR_FIXED) throw malformed("tensor header runs past the end");
    const nd = buf[6];
    const nameLen = dv.getUint16(7, true);
    const np = buf[9];
    const epoch = dv.getUint32(10, true);
    const raw = TENSOR_FIXED + 4 * nd + np + nameLen;
    const headerLen = Math.ceil(raw / 8) * 8;
    if (headerLen > buf.byteLength) throw malformed("header runs past the end");
    const shape: number[] = [];
    for (let i = 0; i < nd; i++) shape.push(dv.getUint32(TENSOR_FIXED + 4 * i, true));
    // Copied: the receive buffer is handed back to a pool once the stage ran (or moved to a stage thread), and
    // the path outlives it. (Not `buf.slice`: on a Buffer, which receive buffers are, that is a view.)
    const path =
      np > 0 ? Uint8Array.from(buf.subarray(TENSOR_FIXED + 4 * nd, TENSOR_FIXED + 4 * nd + np)) : undefined;
    const name = dec.decode(buf.subarray(TENSOR_FIXED + 4 * nd + np, raw));
    let data = buf.subarray(headerLen);
    if (buf[0] === TYPE_PACKED) {
      // A packed frame may not unpack to more than a dense one could carry (no decompression bombs).
      const dense = numel(shape) * dtypeSize(dtype);
      if (dense > maxUnpackedBytes)
        throw malformed(
          `packed tensor '${name}' unpacks to ${dense} bytes, over the limit of ${maxUnpackedBytes}`,
        );
      try {
        data = zeroUnpack(data, numel(shape), dtypeSize(dtype));
      } catch (err) {
        throw malformed(`packed tensor '${name}': ${(err as Error).message}`);
      }
    }
    const expected = numel(shape) * dtypeSize(dtype);
    if (data.byteLength !== expected)
      throw malformed(
        `tensor '${name}' has ${data.byteLength} data bytes, shape [${shape}] needs ${expected}`,
      );
    return path
      ? { type: "tensor", requestId, epoch, name, dtype, shape, data, path }
      : { type: "tensor", requestId, epoch, name, dtype, shape, data };
  }
  if (buf[0] === TYPE_CONTROL) {
    const epoch = dv.getUint32(5, true);
    const jsonLen = dv.getUint32(9, true);
    if (CONTROL_FIXED + jsonLen > buf.byteLength) throw malformed("control message runs past the end");
    let msg: unknown;
    try {
      msg = JSON.parse(dec.decode(buf.subarray(CONTROL_FIXED, CONTROL_FIXED + jsonLen)));
    } catch {
      throw malformed("control message is not JSON");
    }
    if (typeof msg !== "object" || msg === null || typeof (msg as { t?: unknown }).t !== "string")
      throw malformed("control message has no tag");
    const payload = buf.subarray(CONTROL_FIXED + jsonLen);
    return {
      type: "control",
      requestId,
      epoch,
      msg: msg as ControlMessage,
      payload: payload.byteLength > 0 ? payload : undefined,
    };
  }
  throw malformed(`unknown frame type ${buf[0]}`);
}

/** True for a dtype tensor frames carry: every fixed-width type cleave knows (not strings). */
export function isSendable(dtype: string): dtype is DType {
  return isDType(dtype) && dtype !== "string";
}

function unsendable(name: string, dtype: string): RuntimeFault {
  return new RuntimeFault(
    "RUNTIME",
    `tensor '${name}' is ${dtype}, which tensor frames cannot carry (numeric and bool tensors only)`,
    { tensor: name },
  );
}

/**
 * A tensor frame holding an onnxruntime tensor's bytes (a view, not a copy). Throws a RuntimeFault naming
 * the tensor when its type cannot travel (strings, or a type cleave does not know).
 */
export function tensorFrame(requestId: number, name: string, t: ort.Tensor): TensorFrame {
  const d = t.data as ArrayBufferView;
  if (!isSendable(t.type) || (typeof t.data === "object" && Array.isArray(t.data)))
    throw unsendable(name, t.type);
  return {
    type: "tensor",
    requestId,
    name,
    dtype: t.type as DType,
    shape: t.dims.map(Number),
    data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
  };
}

/** An onnxruntime tensor over a tensor frame's bytes (copied only when unaligned). */
export function frameTensor(f: TensorFrame): ort.Tensor {
  const data = bytesAsTyped(f.data, f.dtype);
  return new ort.Tensor(f.dtype as ort.Tensor.Type, data as ort.Tensor.DataType, f.shape);
}

/**
 * The frame with its tensor zero-packed when that makes it smaller (sparse tensors), else the frame as it
 * is. Packing happens once per frame, however many peers it goes to.
 */
export function packTensorFrame(frame: TensorFrame): TensorFrame {
  const packed = zeroPack(frame.data, dtypeSize(frame.dtype));
  return packed ? { ...frame, packed } : frame;
}
