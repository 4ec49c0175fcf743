import { create } from "@bufbuild/protobuf";
import { type ModelProto, NodeProtoSchema } from "onnx-buf";
import { ArgumentError } from "../errors.js";
import { attribute, valueInfo } from "./builder.js";
import { makeTensor } from "./tensor.js";

/** Image preprocessing prepended to a model: what `--preprocess image:HxW,mean=..,std=..,layout=..` gives. */
export interface ImagePreprocess {
  height: number;
  width: number;
  /** Per-channel mean subtracted after scaling pixels to [0, 1] (RGB order). */
  mean: [number, number, number];
  /** Per-channel divisor applied after the mean. */
  std: [number, number, number];
  /** Layout of the model's image input: channels first (NCHW) or last (NHWC). */
  layout: "nchw" | "nhwc";
}

/** Name of the graph input a preprocessed model takes: uint8 RGB pixels, [1, H, W, 3]. */
export const IMAGE_INPUT = "image";

/**
 * Parses `image:224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw` (mean defaults to 0, std to
 * 1, layout to nchw). A wrong part is a one-line ArgumentError naming `--preprocess`.
 */
export function parsePreprocess(text: string): ImagePreprocess {
  const fail = (why: string) =>
    new ArgumentError(`--preprocess: ${why} (expected image:224x224,mean=a/b/c,std=a/b/c,layout=nchw)`, {
      field: "preprocess",
    });
  const m = /^image:(\d+)x(\d+)((?:,[a-z]+=[^,]+)*)$/.exec(text.trim());
  if (!m) throw fail(`'${text}' is not an image preprocessing`);
  const out: ImagePreprocess = {
    height: Number(m[1]),
    width: Number(m[2]),
    mean: [0, 0, 0],
    std: [1, 1, 1],
    layout: "nchw",
  };
  if (!(out.height > 0 && out.width > 0)) throw fail("height and width must be > 0");
  for (const part of m[3].split(",").filter((p) => p !== "")) {
    const [k, v] = part.split("=");
    if (k === "mean" || k === "std") {
      const xs = v.split("/").map(Number);
      if (xs.length !== 3 || !xs.every(Number.isFinite) || (k === "std" && !xs.every((x) => x !== 0)))
        throw fail(`${k}=${v} is not three numbers a/b/c${k === "std" ? " other than 0" : ""}`);
      out[k] = xs as [number, number, number];
    } else if (k === "layout") {
      if (v !== "nchw" && v !== "nhwc") throw fail(`layout=${v} is neither nchw nor nhwc`);
      out.layout = v;
    } else throw fail(`unknown key '${k}'`);
  }
  return out;
}

/**
 * Prepends image preprocessing to `model` (in place) as ONNX nodes, so that it is costed, planned, split and
 * placed like any layer: a new input `image` (uint8 RGB, [1, H, W, 3], as an image decoder gives pixels) goes
 * through Cast to float, Div by 255, Sub mean, Div std and, for an NCHW model, Transpose to [1, 3, H, W], into
 * the model's single float32 image input, which stops being a graph input. The model's input must have
 * exactly that shape.
 */
export function prependImagePreprocess(model: ModelProto, p: ImagePreprocess): ModelProto {
  const g = model.graph;
  if (!g) throw new ArgumentError("--preprocess: the model has no graph", { field: "preprocess" });
  const weights = new Set(g.initializer.map((t) => t.name));
  const inputs = g.input.filter((i) => !weights.has(i.name));
  if (inputs.length !== 1)
    throw new ArgumentError(
      `--preprocess: the model takes ${inputs.length} inputs (${inputs.map((i) => i.name).join(", ")}); image preprocessing needs exactly one`,
      { field: "preprocess" },
    );
  const target = inputs[0];
  const t = target.type?.value.case === "tensorType" ? target.type.value.value : undefined;
  const dims = t?.shape?.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : -1)) ?? [];
  const want = p.layout === "nchw" ? [1, 3, p.height, p.width] : [1, p.height, p.width, 3];
  const fits = dims.length === 4 && dims.every((d, i) => d === -1 || d === want[i]);
  if (t?.elemType !== 1 || !fits)
    throw new ArgumentError(
      `--preprocess: input '${target.name}' is not float32 [${want}] (it is [${dims.map((d) => (d < 0 ? "?" : d))}]); give the model's own size and layout`,
      { field: "preprocess", tensor: target.name },
    );
  const names = new Set([...g.node.flatMap((n) => [...n.input, ...n.output]), ...g.input.map((i) => i.name)]);
  if (names.has(IMAGE_INPUT))
    throw new ArgumentError(`--preprocess: the model already has a tensor named '${IMAGE_INPUT}'`, {
      field: "preprocess",
      tensor: IMAGE_INPUT,
    });
  const n = (s: string) => `preprocess_${s}`;
  const node = (op: string, ins: string[], out: string, attrs: ReturnType<typeof attribute>[] = []) =>
    create(NodeProtoSchema, {
      opType: op,
      input: ins,
      output: [out],
      name: n(op.toLowerCase()),
      attribute: attrs,
    });
  g.initializer.push(
    makeTensor(n("scale"), "float32", [], new Float32Array([255])),
    makeTensor(n("mean"), "float32", [1, 1, 1, 3], new Float32Array(p.mean)),
    makeTensor(n("std"), "float32", [1, 1, 1, 3], new Float32Array(p.std)),
  );
  const nhwcOut = p.layout === "nchw" ? n("normalized") : target.name;
  const pre = [
    node("Cast", [IMAGE_INPUT], n("float"), [attribute("to", 1)]),
    node("Div", [n("float"), n("scale")], n("unit")),
    node("Sub", [n("unit"), n("mean")], n("centered")),
    create(NodeProtoSchema, {
      opType: "Div",
      input: [n("centered"), n("std")],
      output: [nhwcOut],
      name: n("div_std"),
    }),
  ];
  if (p.layout === "nchw")
    pre.push(node("Transpose", [nhwcOut], target.name, [attribute("perm", [0, 3, 1, 2])]));
  g.node = [...pre, ...g.node];
  g.input = g.input.map((i) =>
    i === target ? valueInfo(IMAGE_INPUT, "uint8", [1, p.height, p.width, 3]) : i,
  );
  return model;
}

/** Post-processing appended to a model: what `--postprocess topk=K` gives. */
export interface TopKPostprocess {
  k: number;
}

/** Parses `topk=5`. */
export function parsePostprocess(text: string): TopKPostprocess {
  const m = /^topk=(\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) < 1)
    throw new ArgumentError(`--postprocess: expected topk=K with K >= 1, got '${text}'`, {
      field: "postprocess",
    });
  return { k: Number(m[1]) };
}

/**
 * Appends a TopK over the last axis of the model's single float32 output (in place): the model then returns
 * `<output>_topk_values` (float32) and `<output>_topk_indices` (int64), [..., K] each, largest first, instead
 * of the whole output, so only K values per request leave the last stage.
 */
export function appendTopK(model: ModelProto, p: TopKPostprocess): ModelProto {
  const g = model.graph;
  if (g?.output.length !== 1)
    throw new ArgumentError(
      `--postprocess: the model has ${g?.output.length ?? 0} outputs; top-k needs exactly one`,
      { field: "postprocess" },
    );
  const out = g.output[0];
  const t = out.type?.value.case === "tensorType" ? out.type.value.value : undefined;
  const dims = t?.shape?.dim.map((d) => (d.value.case === "dimValue" ? Number(d.value.value) : -1)) ?? [];
  const last = dims[dims.length - 1];
  if (t?.elemType !== 1 || dims.length === 0 || !(last >= p.k))
    throw new ArgumentError(
      `--postprocess: output '${out.name}' is not float32 with at least ${p.k} values on its last axis (it is [${dims.map((d) => (d < 0 ? "?" : d))}])`,
      { field: "postprocess", tensor: out.name },
    );
  const k = `${out.name}_topk_k`;
  const values = `${out.name}_topk_values`;
  const indices = `${out.name}_topk_indices`;
  g.initializer.push(makeTensor(k, "int64", [1], new BigInt64Array([BigInt(p.k)])));
  g.node.push(
    create(NodeProtoSchema, {
      opType: "TopK",
      input: [out.name, k],
      output: [values, indices],
      name: "postprocess_topk",
      attribute: [attribute("axis", -1), attribute("largest", 1), attribute("sorted", 1)],
    }),
  );
  const shape = [...dims.slice(0, -1).map((d) => (d < 0 ? "batch" : d)), p.k];
  g.output = [valueInfo(values, "float32", shape), valueInfo(indices, "int64", shape)];
  return model;
}
