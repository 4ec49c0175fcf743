import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProto_DataLocation,
  TensorProtoSchema,
} from "onnx-buf";
import { errorMessage, ModelError } from "../errors.js";
import { writeOutputFile } from "../output-file.js";

/** Options for decoding a model held in memory. */
export interface DecodeOptions {
  /** Folder that external-data `location`s are relative to (the model file's folder). */
  baseDir?: string;
  /** Name used in error messages. */
  source?: string;
}

/** Calls `fn` on every tensor stored in a graph: initializers, Constant values, and those of subgraphs. */
export function forEachTensor(graph: GraphProto, fn: (t: TensorProto) => void): void {
  for (const t of graph.initializer) fn(t);
  for (const n of graph.node) {
    for (const a of n.attribute) {
      if (a.t) fn(a.t);
      for (const t of a.tensors) fn(t);
      if (a.g) forEachTensor(a.g, fn);
      for (const g of a.graphs) forEachTensor(g, fn);
    }
  }
}

/**
 * Decodes ONNX bytes into a ModelProto. Weight bytes stay zero-copy views into `bytes`; tensors stored
 * as external data are read from their files (each file once) and attached as views too.
 */
export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): ModelProto {
  const source = opts.source ?? "model";
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: false });
  } catch (err) {
    throw new ModelError("NOT_ONNX", `${source}: not a valid ONNX model (${errorMessage(err)})`, {
      file: source,
    });
  }
  if (!model.graph || model.irVersion === 0n || model.opsetImport.length === 0) {
    throw new ModelError(
      "NOT_ONNX",
      `${source}: not a valid ONNX model (no graph, IR version or opset import; truncated or another format?)`,
      { file: source },
    );
  }
  resolveExternalData(model.graph, opts.baseDir ?? process.cwd(), source);
  return model;
}

/** Reads and decodes an ONNX file; errors name the file. */
export function loadModel(path: string): ModelProto {
  if (!existsSync(path)) throw new ModelError("FILE_NOT_FOUND", `${path}: no such file`, { file: path });
  let bytes: Uint8Array;
  try {
    if (statSync(path).isDirectory()) throw new Error("is a directory");
    bytes = readFileSync(path);
  } catch (err) {
    throw new ModelError("FILE_UNREADABLE", `${path}: cannot read (${errorMessage(err)})`, { file: path });
  }
  return decodeModel(bytes, { baseDir: dirname(resolve(path)), source: path });
}

function resolveExternalData(graph: GraphProto, baseDir: string, source: string): void {
  const files = new Map<string, Uint8Array>();
  forEachTensor(graph, (t) => {
    if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL) return;
    const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
    const location = kv.get("location");
    if (!location) {
      throw new ModelError("NOT_ONNX", `${source}: tensor '${t.name}' is external but has no location`, {
        file: source,
        tensor: t.name,
      });
    }
    // As onnxruntime does: a model may only read data files inside its own folder.
    if (isAbsolute(location) || location.split(/[\\/]/).includes("..")) {
      throw new ModelError(
        "NOT_ONNX",
        `${source}: tensor '${t.name}': external data location '${location}' is outside the model's folder (absolute paths and '..' are refused)`,
        { file: source, tensor: t.name },
      );
    }
    const path = join(baseDir, location);
    let data = files.get(path);
    if (!data) {
      if (!existsSync(path)) {
        throw new ModelError(
          "FILE_NOT_FOUND",
          `${source}: external data file '${location}' of tensor '${t.name}' not found`,
          { file: path, tensor: t.name },
        );
      }
      data = readFileSync(path);
      files.set(path, data);
    }
    const offset = Number(kv.get("offset") ?? 0);
    const length = kv.has("length") ? Number(kv.get("length")) : data.length - offset;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new ModelError(
        "NOT_ONNX",
        `${source}: tensor '${t.name}': external data offset '${kv.get("offset")}' or length '${kv.get("length")}' is not a byte count`,
        { file: path, tensor: t.name },
      );
    }
    if (offset + length > data.length) {
      throw new ModelError(
        "NOT_ONNX",
        `${source}: tensor '${t.name}' reads past the end of external data file '${location}'`,
        { file: path, tensor: t.name },
      );
    }
    t.rawData = data.subarray(offset, offset + length) as Uint8Array<ArrayBuffer>;
    t.dataLocation = TensorProto_DataLocation.DEFAULT;
    t.externalData = [];
  });
}

const fieldNo = (
  schema: typeof ModelProtoSchema | typeof GraphProtoSchema | typeof TensorProtoSchema,
  name: string,
) => schema.fields.find((f) => f.localName === name)!.number;
const MODEL_GRAPH = fieldNo(ModelProtoSchema, "graph");
const GRAPH_INITIALIZER = fieldNo(GraphProtoSchema, "initializer");
const TENSOR_RAW_DATA = fieldNo(TensorProtoSchema, "rawData");

/** Tag and length prefix of a length-delimited field. */
function fieldHeader(field: number, length: number): Uint8Array {
  return new BinaryWriter().tag(field, WireType.LengthDelimited).uint32(length).finish();
}

const total = (chunks: readonly Uint8Array[]) => chunks.reduce((n, c) => n + c.length, 0);

/**
 * Encodes a model as byte chunks whose concatenation is a valid ONNX file, without copying weights: each
 * initializer's `raw_data` chunk is the weight's own view. Every message is still encoded by the generated
 * schema; only the framing of the graph, its initializers and their raw data is laid out here, which protobuf
 * allows in any field order. Encoding a 550 MB model this way costs no extra memory for weights.
 */
export function encodeModelChunks(model: ModelProto): Uint8Array[] {
  const g = model.graph;
  if (!g) return [toBinary(ModelProtoSchema, model)];
  const head = toBinary(ModelProtoSchema, { ...model, graph: undefined });
  const graphHead = toBinary(GraphProtoSchema, { ...g, initializer: [] });
  const inits: Uint8Array[] = [];
  for (const t of g.initializer) {
    const tensor =
      t.rawData.length > 0
        ? [
            toBinary(TensorProtoSchema, withoutRawData(t)),
            fieldHeader(TENSOR_RAW_DATA, t.rawData.length),
            t.rawData,
          ]
        : [toBinary(TensorProtoSchema, t)];
    inits.push(fieldHeader(GRAPH_INITIALIZER, total(tensor)), ...tensor);
  }
  return [head, fieldHeader(MODEL_GRAPH, graphHead.length + total(inits)), graphHead, ...inits];
}

/** The tensor without its raw_data field (absent, not empty, so proto2 does not write it). */
function withoutRawData(t: TensorProto): TensorProto {
  const { rawData, ...rest } = t;
  void rawData;
  return rest as TensorProto;
}

/** Encodes a model to ONNX bytes (all tensors inline) in one buffer. */
export function encodeModel(model: ModelProto): Uint8Array {
  const chunks = encodeModelChunks(model);
  const out = new Uint8Array(total(chunks));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * Largest model protobuf can hold, bytes: ONNX's own checker (`MAXIMUM_PROTOBUF`) refuses models above
 * 2,000,000,000 bytes, a little under protobuf's 2^31 - 1; larger models keep their tensors in external data.
 */
export const PROTOBUF_LIMIT_BYTES = 2_000_000_000;

/** Options for writing a model file. */
export interface SaveOptions {
  /**
   * Store tensors of at least this many bytes in a sidecar file `<model>.data` (ONNX external data),
   * as needed for models over protobuf's 2 GB limit. Off by default.
   */
  externalDataThreshold?: number;
}

/** A file written, with its length and SHA-256. */
export interface WrittenFile {
  path: string;
  /** Length, bytes. */
  bytes: number;
  /** SHA-256 of the contents (hex). */
  sha256: string;
}

/** What {@link saveModel} wrote: the model file, and its external data file when tensors were moved out. */
export interface SavedModel extends WrittenFile {
  /** The external data file (its name relative to the model is `location`). */
  data?: WrittenFile & { location: string };
}

/** Bytes of a model encoded with every tensor inline. */
export function encodedSize(model: ModelProto): number {
  return total(encodeModelChunks(model));
}

/**
 * Writes a model to `path` and returns the files written with their SHA-256. With `externalDataThreshold`,
 * tensors of at least that many bytes go to `<basename>.data` beside it (no file when none is that large) and
 * the model records their location, offset and length. The in-memory model is left unchanged.
 */
export function saveModel(model: ModelProto, path: string, opts: SaveOptions = {}): SavedModel {
  const threshold = opts.externalDataThreshold;
  if (threshold === undefined || !model.graph)
    return { path, ...writeChunks(path, encodeModelChunks(model)) };
  const location = `${basename(path)}.data`;
  const dataPath = join(dirname(path), location);
  const moved: Array<{ t: TensorProto; raw: Uint8Array<ArrayBuffer> }> = [];
  let offset = 0;
  try {
    forEachTensor(model.graph, (t) => {
      if (t.rawData.length < threshold) return;
      moved.push({ t, raw: t.rawData });
      t.externalData = [
        create(StringStringEntryProtoSchema, { key: "location", value: location }),
        create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(t.rawData.length) }),
      ];
      t.dataLocation = TensorProto_DataLocation.EXTERNAL;
      offset += t.rawData.length;
      t.rawData = new Uint8Array(0);
    });
    const data =
      moved.length > 0
        ? writeChunks(
            dataPath,
            moved.map((m) => m.raw),
          )
        : undefined;
    const file = writeChunks(path, encodeModelChunks(model));
    return { path, ...file, ...(data ? { data: { path: dataPath, location, ...data } } : {}) };
  } finally {
    for (const { t, raw } of moved) {
      t.rawData = raw;
      t.externalData = [];
      t.dataLocation = TensorProto_DataLocation.DEFAULT;
    }
  }
}

/**
 * Writes byte chunks to a file in order (no concatenation), atomically ({@link writeOutputFile}); returns the
 * file's length and SHA-256.
 */
export function writeChunks(path: string, chunks: readonly Uint8Array[]): { bytes: number; sha256: string } {
  writeOutputFile(path, chunks);
  const hash = createHash("sha256");
  let bytes = 0;
  for (const c of chunks) {
    hash.update(c);
    bytes += c.length;
  }
  return { bytes, sha256: hash.digest("hex") };
}
