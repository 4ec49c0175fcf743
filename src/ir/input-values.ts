import { existsSync, readFileSync } from "node:fs";
import { ArgumentError } from "../errors.js";
import { type DType, INTEGER_RANGE } from "../onnx/dtype.js";
import { readNpy } from "../onnx/npy.js";
import { ort, randomTensor } from "../onnx/ort.js";
import { numel, type TypedArray } from "../onnx/tensor.js";
import { type Graph, type TensorType, typeBytes } from "./graph.js";
import { isIntegral } from "./shape-fold.js";

/** A value given for a graph input, as the user wrote it: its nested shape and elements (row-major). */
export interface InputValue {
  shape: number[];
  data: number[];
  /** Where it came from, for error messages (`--input-value sr`, `inputs.json`, `x.npy`). */
  origin: string;
  /** The `--inputs` JSON file it came from: such a file must give every input of the model. */
  file?: string;
}

/** An input value checked against the input's type: typed data ready to feed onnxruntime. */
export interface GivenInput {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/** Shape and flat elements of a number, boolean, or nested (rectangular) array of them. */
export function nestedValue(x: unknown, origin: string): InputValue {
  const shape: number[] = [];
  for (let v = x; Array.isArray(v); v = v[0]) shape.push(v.length);
  const data: number[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (typeof v === "boolean") data.push(v ? 1 : 0);
      else if (typeof v === "number" && Number.isFinite(v)) data.push(v);
      else
        throw new ArgumentError(`${origin}: expected numbers, got ${JSON.stringify(v)}`, { field: origin });
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth])
      throw new ArgumentError(`${origin}: nested lists must be rectangular (shape [${shape.join(", ")}])`, {
        field: origin,
      });
    for (const e of v) walk(e, depth + 1);
  };
  walk(x, 0);
  return { shape, data, origin };
}

/** Parses an `--input-value` item `name=16000` or `name=[1,2,3]` (JSON numbers, booleans, nested lists). */
export function parseInputValue(item: string): [string, InputValue] {
  const eq = item.indexOf("=");
  if (eq <= 0)
    throw new ArgumentError(`--input-value: expected name=16000 or name=[1,2,3], got '${item}'`, {
      field: "input-value",
    });
  const name = item.slice(0, eq);
  const origin = `--input-value ${name}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(item.slice(eq + 1));
  } catch {
    throw new ArgumentError(`${origin}: '${item.slice(eq + 1)}' is not a number or a list like [1,2,3]`, {
      field: "input-value",
      tensor: name,
    });
  }
  return [name, nestedValue(parsed, origin)];
}

/**
 * Reads `--inputs` items: a JSON file (an object of input name to a number or nested lists) or
 * `name=file.npy` (one NumPy array per input). The result maps input names to values.
 */
export function readInputsFiles(items: readonly string[]): Record<string, InputValue> {
  const out: Record<string, InputValue> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    const [name, file] = eq > 0 ? [item.slice(0, eq), item.slice(eq + 1)] : [undefined, item];
    if (!existsSync(file))
      throw new ArgumentError(`--inputs: no file '${file}'`, { file, field: "inputs" }, "FILE_NOT_FOUND");
    if (file.endsWith(".npy")) {
      if (name === undefined)
        throw new ArgumentError(`--inputs: give the input a .npy file is for as name=${file}`, {
          file,
          field: "inputs",
        });
      const a = readNpy(file);
      out[name] = { shape: a.shape, data: a.data, origin: file };
      continue;
    }
    let obj: unknown;
    try {
      obj = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new ArgumentError(`--inputs: ${file} is not JSON (${(err as Error).message})`, {
        file,
        field: "inputs",
      });
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj))
      throw new ArgumentError(`--inputs: ${file} must hold a JSON object of input name to values`, {
        file,
        field: "inputs",
      });
    for (const [k, v] of Object.entries(obj))
      out[k] = { ...nestedValue(v, `--inputs ${file}: input '${k}'`), file };
  }
  return out;
}

/**
 * Shapes for inputs whose dims are symbolic and whose value fixes them (same rank): merged into
 * `inputShapes` (which wins) so a value alone sets the shape of, say, a sequence of token ids.
 */
export function shapesFromValues(
  graph: Graph,
  values: Readonly<Record<string, InputValue>>,
  inputShapes: Readonly<Record<string, number[]>> = {},
): Record<string, number[]> {
  const out: Record<string, number[]> = { ...inputShapes };
  for (const vi of graph.model.graph?.input ?? []) {
    const v = values[vi.name];
    if (!v || out[vi.name] !== undefined) continue;
    const tt = vi.type?.value.case === "tensorType" ? vi.type.value.value : undefined;
    if (!tt) continue;
    if (!tt.shape) {
      out[vi.name] = [...v.shape]; // no declared shape: the value's is the only one
      continue;
    }
    const dims = tt.shape.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : undefined));
    if (dims.length !== v.shape.length || dims.every((d) => d !== undefined)) continue;
    if (dims.every((d, i) => d === undefined || d === v.shape[i])) out[vi.name] = [...v.shape];
  }
  return out;
}

/**
 * Checks given values against the model's inputs (resolved types) and converts them to typed data. Errors
 * name the flag or file, the input and what is wrong: an unknown input, a value of the wrong type, a
 * wrong element count, an `--inputs` JSON file missing an input.
 */
export function checkInputValues(
  graph: Graph,
  types: ReadonlyMap<string, TensorType>,
  values: Readonly<Record<string, InputValue>>,
): Map<string, GivenInput> {
  const names = graph.inputs.map((v) => v.name);
  for (const [name, v] of Object.entries(values)) {
    if (!names.includes(name))
      throw new ArgumentError(`${v.origin}: the model has no input '${name}' (inputs: ${names.join(", ")})`, {
        tensor: name,
        field: v.origin,
      });
  }
  for (const file of new Set(Object.values(values).flatMap((v) => (v.file === undefined ? [] : [v.file])))) {
    const missing = names.filter((n) => values[n] === undefined);
    if (missing.length > 0)
      throw new ArgumentError(
        `--inputs ${file}: no value for input '${missing[0]}' (the file must give every input: ${names.join(", ")})`,
        { file, tensor: missing[0], field: "inputs" },
      );
  }
  const out = new Map<string, GivenInput>();
  for (const [name, v] of Object.entries(values)) {
    const t = types.get(name)!;
    const want = numel(t.shape);
    if (v.data.length !== want)
      throw new ArgumentError(
        `${v.origin}: input '${name}' is ${t.dtype} [${t.shape.join(", ")}] (${want} value${want === 1 ? "" : "s"}), got ${v.data.length} value${v.data.length === 1 ? "" : "s"}`,
        { tensor: name, field: v.origin },
      );
    out.set(name, { dtype: t.dtype, shape: [...t.shape], data: typedData(name, t.dtype, v) });
  }
  return out;
}

function typedData(name: string, dtype: DType, v: InputValue): TypedArray {
  const bad = (what: string) =>
    new ArgumentError(`${v.origin}: input '${name}' is ${dtype}, ${what}`, { tensor: name, field: v.origin });
  if (dtype === "float32") return Float32Array.from(v.data);
  if (dtype === "float64") return Float64Array.from(v.data);
  const range = INTEGER_RANGE[dtype];
  if (!range) throw bad("which cleave cannot take values for (give float or integer inputs)");
  const off = v.data.find((x) => !Number.isInteger(x) || x < range[0] || x > range[1]);
  if (off !== undefined)
    throw bad(
      dtype === "bool"
        ? `got ${off} (give 0/1 or true/false)`
        : `got ${off} (give integers in [${range[0]}, ${range[1]}])`,
    );
  switch (dtype) {
    case "int8":
      return Int8Array.from(v.data);
    case "uint8":
    case "bool":
      return Uint8Array.from(v.data);
    case "int16":
      return Int16Array.from(v.data);
    case "uint16":
      return Uint16Array.from(v.data);
    case "int32":
      return Int32Array.from(v.data);
    case "uint32":
      return Uint32Array.from(v.data);
    case "int64":
      return BigInt64Array.from(v.data, (x) => BigInt(x));
    default:
      return BigUint64Array.from(v.data, (x) => BigInt(x));
  }
}

/** What {@link inputFeeds} needs of a model: its graph, resolved input types and given values. */
export interface FeedSource {
  readonly graph: Graph;
  readonly types: ReadonlyMap<string, TensorType>;
  readonly inputValues?: ReadonlyMap<string, GivenInput>;
}

/**
 * The feeds every part of cleave that runs a model uses: the given value of an input when there is one,
 * else zeros for integer and bool inputs (always valid indices, lengths and masks), else seeded
 * pseudo-random floats in [-1, 1) (input k gets seed `seed + k`).
 */
export function inputFeeds(model: FeedSource, seed = 1): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  model.graph.inputs.forEach((v, k) => {
    const t = model.types.get(v.name);
    if (!t)
      throw new ArgumentError(
        `${model.graph.source}: input '${v.name}' has no known shape; give it with --input-shape ${v.name}=1x3x224x224`,
        { tensor: v.name },
      );
    feeds[v.name] = inputTensor(v.name, t, model.inputValues, seed + k);
  });
  return feeds;
}

/** Largest sample input cleave makes up to run a model, bytes: a shape beyond it is a mistake in the file or the flags. */
export const MAX_SAMPLE_INPUT_BYTES = 2 * 2 ** 30;

/** The feed of one input (see {@link inputFeeds}). */
export function inputTensor(
  name: string,
  t: TensorType,
  values: ReadonlyMap<string, GivenInput> | undefined,
  seed: number,
): ort.Tensor {
  const given = values?.get(name);
  if (given)
    return new ort.Tensor(given.dtype as ort.Tensor.Type, given.data as ort.Tensor.DataType, given.shape);
  const bytes = typeBytes(t);
  if (bytes > MAX_SAMPLE_INPUT_BYTES) {
    throw new ArgumentError(
      `input '${name}' of shape [${t.shape.join(", ")}] would take ${(bytes / 2 ** 30).toFixed(1)} GiB as a sample input (the limit is ${MAX_SAMPLE_INPUT_BYTES / 2 ** 30} GiB); give a smaller shape with --input-shape ${name}=...`,
      { tensor: name, field: "input-shape" },
    );
  }
  if (isIntegral(t.dtype) || t.dtype === "bool") {
    const n = numel(t.shape);
    const data =
      t.dtype === "int64"
        ? new BigInt64Array(n)
        : t.dtype === "uint64"
          ? new BigUint64Array(n)
          : t.dtype === "bool"
            ? new Uint8Array(n)
            : zerosOf(t.dtype, n);
    return new ort.Tensor(t.dtype as ort.Tensor.Type, data as ort.Tensor.DataType, [...t.shape]);
  }
  return randomTensor(t.dtype, t.shape, seed);
}

function zerosOf(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case "int8":
      return new Int8Array(n);
    case "uint8":
      return new Uint8Array(n);
    case "int16":
      return new Int16Array(n);
    case "uint16":
      return new Uint16Array(n);
    case "uint32":
      return new Uint32Array(n);
    default:
      return new Int32Array(n);
  }
}
