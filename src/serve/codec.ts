/**
 * The Open Inference Protocol's (KServe v2) inference request and response bodies, JSON and with the binary
 * tensor data extension. A binary body is a JSON header of `Inference-Header-Content-Length` bytes followed
 * by the tensors' little-endian bytes, row major, in the order of the inputs whose parameters give
 * `binary_data_size`; a BYTES element is a u32 length and its bytes. Responses put requested outputs in
 * binary the same way. Decoding checks every tensor against the model's inputs (name, datatype, shape, element
 * count, byte length) and fails with a one-line ArgumentError naming the field, which the server answers with
 * HTTP 400. A BYTES element arrives as a string of one latin1 character per byte (the bytes of binary data as
 * they are, of a JSON string its UTF-8 bytes), so encoded images pass through unchanged.
 */
import type { TensorSpec } from "../export/manifest.js";
import { ArgumentError } from "../errors.js";
import { type DType, dtypeSize, INTEGER_RANGE } from "../onnx/dtype.js";
import { ort } from "../onnx/ort.js";
import { bytesAsTyped } from "../onnx/tensor.js";
import type { Tensors } from "../runtime/coordinator/pipeline.js";
import { oipDatatype } from "./datatype.js";

/** The inputs and outputs a served model has, as its metadata lists them. */
export interface ModelSignature {
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
}

/** One output a request asked for, and whether it goes back as binary data. */
export interface RequestedOutput {
  name: string;
  binary: boolean;
}

/** A decoded inference request. */
export interface DecodedRequest {
  /** The request's `id`, echoed in the response. */
  id?: string;
  feeds: Tensors;
  /** Outputs to return, in order (every model output when the request names none). */
  outputs: RequestedOutput[];
  /** The request's `timeout` parameter, converted to ms (the protocol's clients send microseconds). */
  timeoutMs?: number;
}

/** An encoded response: its parts in order (the JSON first), and the JSON's length when binary data follows. */
export interface EncodedResponse {
  parts: Uint8Array[];
  bytes: number;
  /** Length of the JSON header; undefined for a JSON-only body. */
  headerLength?: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function bad(message: string, field: string): ArgumentError {
  return new ArgumentError(message, { field });
}

/** Element count of a shape. */
function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Decodes an inference request body for a model with signature `model`. `headerLength` is the value of the
 * `Inference-Header-Content-Length` header (undefined: the whole body is JSON).
 */
export function decodeInferRequest(
  body: Uint8Array,
  headerLength: number | undefined,
  model: ModelSignature,
): DecodedRequest {
  const jsonEnd = headerLength ?? body.byteLength;
  if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.byteLength)
    throw bad(
      `Inference-Header-Content-Length ${headerLength} is not within the body of ${body.byteLength} bytes`,
      "Inference-Header-Content-Length",
    );
  let req: unknown;
  try {
    req = JSON.parse(Buffer.from(body.buffer, body.byteOffset, jsonEnd).toString("utf8"));
  } catch (err) {
    throw bad(`request body is not JSON (${(err as Error).message})`, "body");
  }
  if (!isObject(req)) throw bad("request body must be a JSON object", "body");
  const id = req.id;
  if (id !== undefined && typeof id !== "string") throw bad("id: expected a string", "id");
  const params = req.parameters ?? {};
  if (!isObject(params)) throw bad("parameters: expected an object", "parameters");
  let timeoutMs: number | undefined;
  if (params.timeout !== undefined) {
    if (typeof params.timeout !== "number" || !(params.timeout > 0))
      throw bad(
        `parameters.timeout: expected microseconds > 0, got ${JSON.stringify(params.timeout)}`,
        "parameters.timeout",
      );
    timeoutMs = params.timeout / 1000;
  }
  if (!Array.isArray(req.inputs)) throw bad("inputs: expected an array of tensors", "inputs");
  const specs = new Map(model.inputs.map((s) => [s.name, s]));
  const feeds: Tensors = {};
  let offset = jsonEnd;
  req.inputs.forEach((input: unknown, i: number) => {
    const at = `inputs[${i}]`;
    if (!isObject(input)) throw bad(`${at}: expected an object`, at);
    const name = input.name;
    if (typeof name !== "string") throw bad(`${at}.name: expected a string`, `${at}.name`);
    const spec = specs.get(name);
    if (!spec)
      throw bad(
        `${at}: '${name}' is not an input of the model (it takes ${model.inputs.map((s) => s.name).join(", ")})`,
        `${at}.name`,
      );
    if (feeds[name] !== undefined) throw bad(`${at}: input '${name}' is given twice`, `${at}.name`);
    const want = oipDatatype(spec.dtype);
    if (input.datatype !== want)
      throw bad(
        `${at}: '${name}' has datatype ${JSON.stringify(input.datatype)}, the model takes ${want}`,
        `${at}.datatype`,
      );
    const shape = input.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`${at}.shape: expected a list of sizes`, `${at}.shape`);
    const dims = shape as number[];
    if (dims.length !== spec.shape.length || spec.shape.some((d, k) => d >= 0 && d !== dims[k]))
      throw bad(
        `${at}: '${name}' has shape [${dims}], the model takes [${spec.shape}] (-1: any size)`,
        `${at}.shape`,
      );
    const ip = input.parameters ?? {};
    if (!isObject(ip)) throw bad(`${at}.parameters: expected an object`, `${at}.parameters`);
    const n = elements(dims);
    if (ip.binary_data_size !== undefined) {
      const size = ip.binary_data_size;
      if (!Number.isSafeInteger(size) || (size as number) < 0)
        throw bad(
          `${at}.parameters.binary_data_size: expected a byte count`,
          `${at}.parameters.binary_data_size`,
        );
      const end = offset + (size as number);
      if (end > body.byteLength)
        throw bad(
          `${at}: binary_data_size ${size} of '${name}' runs past the end of the body (${body.byteLength - offset} bytes left after the JSON and earlier inputs)`,
          `${at}.parameters.binary_data_size`,
        );
      feeds[name] = binaryTensor(spec.dtype, body.subarray(offset, end), dims, n, at);
      offset = end;
    } else {
      if (input.data === undefined)
        throw bad(`${at}: '${name}' has neither data nor parameters.binary_data_size`, `${at}.data`);
      feeds[name] = jsonTensor(spec.dtype, input.data, dims, n, at);
    }
  });
  if (offset !== body.byteLength)
    throw bad(
      `the body has ${body.byteLength - offset} bytes of binary data past what the inputs' binary_data_size account for`,
      "binary_data_size",
    );
  for (const s of model.inputs)
    if (feeds[s.name] === undefined)
      throw bad(
        `input '${s.name}' is missing (the model takes ${model.inputs.map((x) => x.name).join(", ")})`,
        "inputs",
      );
  return {
    ...(id !== undefined ? { id } : {}),
    feeds,
    outputs: requestedOutputs(req, params, model),
    timeoutMs,
  };
}

function requestedOutputs(req: Json, params: Json, model: ModelSignature): RequestedOutput[] {
  const allBinary = params.binary_data_output === true;
  if (req.outputs === undefined) return model.outputs.map((o) => ({ name: o.name, binary: allBinary }));
  if (!Array.isArray(req.outputs)) throw bad("outputs: expected an array", "outputs");
  const names = new Set(model.outputs.map((o) => o.name));
  return req.outputs.map((o: unknown, i: number) => {
    const at = `outputs[${i}]`;
    if (!isObject(o) || typeof o.name !== "string") throw bad(`${at}.name: expected a string`, `${at}.name`);
    if (!names.has(o.name))
      throw bad(
        `${at}: '${o.name}' is not an output of the model (its outputs: ${[...names].join(", ")})`,
        `${at}.name`,
      );
    const p = o.parameters;
    const binary = isObject(p) && typeof p.binary_data === "boolean" ? p.binary_data : allBinary;
    return { name: o.name, binary };
  });
}

function binaryTensor(dtype: DType, bytes: Uint8Array, dims: number[], n: number, at: string): ort.Tensor {
  if (dtype === "string") {
    const out: string[] = [];
    let p = 0;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    while (p < bytes.byteLength) {
      if (p + 4 > bytes.byteLength) break;
      const len = view.getUint32(p, true);
      if (p + 4 + len > bytes.byteLength) break;
      out.push(Buffer.from(bytes.buffer, bytes.byteOffset + p + 4, len).toString("latin1"));
      p += 4 + len;
    }
    if (p !== bytes.byteLength || out.length !== n)
      throw bad(
        `${at}: binary BYTES data holds ${out.length} whole elements in ${bytes.byteLength} bytes, its shape [${dims}] has ${n}`,
        `${at}.parameters.binary_data_size`,
      );
    return new ort.Tensor("string", out, dims);
  }
  const want = n * dtypeSize(dtype);
  if (bytes.byteLength !== want)
    throw bad(
      `${at}: binary_data_size is ${bytes.byteLength} bytes, shape [${dims}] of ${oipDatatype(dtype)} takes ${want}`,
      `${at}.parameters.binary_data_size`,
    );
  // A copy, not a view: the body's buffer is not aligned for every type and is handed to the pipeline.
  const data = bytesAsTyped(new Uint8Array(bytes), dtype);
  return new ort.Tensor(dtype as ort.Tensor.Type, data as ort.Tensor.DataType, dims);
}

/** Flattens nested JSON arrays in row-major order (the protocol allows both flat and nested data). */
function flatten(data: unknown[]): unknown[] {
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else out.push(v);
  };
  walk(data);
  return out;
}

function jsonTensor(dtype: DType, raw: unknown, dims: number[], n: number, at: string): ort.Tensor {
  if (!Array.isArray(raw)) throw bad(`${at}.data: expected an array`, `${at}.data`);
  const data = flatten(raw);
  if (data.length !== n)
    throw bad(`${at}.data: ${data.length} elements, shape [${dims}] has ${n}`, `${at}.data`);
  const wrong = (k: number, what: string) =>
    bad(`${at}.data[${k}]: expected ${what}, got ${JSON.stringify(data[k])}`, `${at}.data`);
  if (dtype === "string") {
    if (!data.every((v) => typeof v === "string"))
      throw wrong(
        data.findIndex((v) => typeof v !== "string"),
        "a string",
      );
    return new ort.Tensor(
      "string",
      (data as string[]).map((v) => Buffer.from(v, "utf8").toString("latin1")),
      dims,
    );
  }
  if (dtype === "bool") {
    const out = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const v = data[k];
      if (typeof v !== "boolean") throw wrong(k, "true or false");
      out[k] = v ? 1 : 0;
    }
    return new ort.Tensor("bool", out, dims);
  }
  if (dtype === "float16" || dtype === "bfloat16")
    throw bad(`${at}: ${dtype} has no JSON form in the protocol; send it as binary data`, `${at}.data`);
  const range = INTEGER_RANGE[dtype];
  if (range) {
    const [lo, hi] = range;
    for (let k = 0; k < n; k++) {
      const v = data[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi)
        throw wrong(k, `an integer in [${lo}, ${hi}]`);
    }
    if (dtype === "int64") return new ort.Tensor("int64", BigInt64Array.from(data as number[], BigInt), dims);
    if (dtype === "uint64")
      return new ort.Tensor("uint64", BigUint64Array.from(data as number[], BigInt), dims);
  } else {
    for (let k = 0; k < n; k++) if (typeof data[k] !== "number") throw wrong(k, "a number");
  }
  const typed = typedFrom(dtype, data as number[]);
  return new ort.Tensor(dtype as ort.Tensor.Type, typed as ort.Tensor.DataType, dims);
}

function typedFrom(dtype: DType, data: number[]) {
  switch (dtype) {
    case "float64":
      return Float64Array.from(data);
    case "int8":
      return Int8Array.from(data);
    case "uint8":
      return Uint8Array.from(data);
    case "int16":
      return Int16Array.from(data);
    case "uint16":
      return Uint16Array.from(data);
    case "int32":
      return Int32Array.from(data);
    case "uint32":
      return Uint32Array.from(data);
    default:
      return Float32Array.from(data);
  }
}

/** A tensor's elements as JSON values (int64 as numbers, bool as booleans). */
function jsonData(t: ort.Tensor): unknown[] {
  const d = t.data;
  if (t.type === "string") return d as string[];
  if (t.type === "bool") return Array.from(d as Uint8Array, (v) => v !== 0);
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Array.from(d, Number);
  return Array.from(d as ArrayLike<number>);
}

function tensorBytes(t: ort.Tensor): Uint8Array {
  if (t.type === "string") {
    const parts = (t.data as string[]).flatMap((s) => {
      const b = Buffer.from(s, "utf8");
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.byteLength);
      return [len, b];
    });
    return Buffer.concat(parts);
  }
  const d = t.data as ArrayBufferView;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * Encodes the response to a request: `model_name`, `model_version` when given, the request's `id`, and the
 * requested outputs, each as JSON `data` or, when asked for (and always for FP16, which has no JSON form),
 * as binary data after the JSON header.
 */
export function encodeInferResponse(
  modelName: string,
  modelVersion: string | undefined,
  id: string | undefined,
  outputs: Tensors,
  requested: readonly RequestedOutput[],
): EncodedResponse {
  const binary: Uint8Array[] = [];
  const entries = requested.map((r) => {
    const t = outputs[r.name];
    const datatype = oipDatatype(t.type as DType) ?? t.type;
    const shape = t.dims.map(Number);
    if (r.binary || t.type === "float16") {
      const bytes = tensorBytes(t);
      binary.push(bytes);
      return { name: r.name, datatype, shape, parameters: { binary_data_size: bytes.byteLength } };
    }
    return { name: r.name, datatype, shape, data: jsonData(t) };
  });
  const head = Buffer.from(
    JSON.stringify({
      model_name: modelName,
      ...(modelVersion !== undefined ? { model_version: modelVersion } : {}),
      ...(id !== undefined ? { id } : {}),
      outputs: entries,
    }),
    "utf8",
  );
  const bytes = binary.reduce((s, b) => s + b.byteLength, head.byteLength);
  return binary.length === 0
    ? { parts: [head], bytes }
    : { parts: [head, ...binary], bytes, headerLength: head.byteLength };
}

/** The model metadata object of the protocol (`GET /v2/models/{name}`). */
export function modelMetadata(name: string, versions: readonly string[], model: ModelSignature): Json {
  const spec = (s: TensorSpec) => ({
    name: s.name,
    datatype: oipDatatype(s.dtype) ?? s.dtype,
    shape: s.shape,
  });
  return {
    name,
    versions,
    platform: "onnx_onnxv1",
    inputs: model.inputs.map(spec),
    outputs: model.outputs.map(spec),
  };
}
